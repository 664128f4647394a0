"""The artifact bucket: presigned transfers, existence, streaming reads, quarantine."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.contract import ArtifactKind

ARTIFACT_PREFIX = "artifacts/"
QUARANTINE_PREFIX = "quarantine/"
READ_CHUNK_BYTES = 1024 * 1024


# The object's name under artifacts/<app>/<digest>/ says what kind of upload it is.
OBJECT_NAMES = {
    ArtifactKind.ARCHIVE: "app.tar.gz",
    ArtifactKind.MANIFEST: "artifact.json",
    ArtifactKind.LAYER: "layer.tar.gz",
}


def artifact_key(app_name: str, digest: str, kind: ArtifactKind = ArtifactKind.ARCHIVE) -> str:
    return f"{ARTIFACT_PREFIX}{app_name}/{digest}/{OBJECT_NAMES[kind]}"


def quarantine_key(key: str) -> str:
    return QUARANTINE_PREFIX + key.removeprefix(ARTIFACT_PREFIX)


def checksum_header(digest: str) -> str:
    """The ``x-amz-checksum-sha256`` value: base64 of the raw digest."""
    return base64.b64encode(bytes.fromhex(digest)).decode()


@dataclass(frozen=True)
class PresignedRequest:
    method: str
    url: str
    headers: dict[str, str]
    expires_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "url": self.url, "headers": self.headers}


@dataclass(frozen=True)
class StoredObject:
    """What the store says about an object without reading it."""

    key: str
    size_bytes: int
    # The S3 version id where the bucket keeps versions, else None.
    version_id: str | None = None
    etag: str = ""
    # The x-amz-checksum-sha256 the object was written with, when the store keeps one.
    checksum_sha256: str | None = None

    @property
    def version(self) -> str:
        """One name per stored version of the key: a new PUT, even of the same bytes, gets a
        new version id; without versioning, the ETag (the content's MD5) stands in."""
        return f"version:{self.version_id}" if self.version_id else f"etag:{self.etag}"

    def may_hold(self, digest: str, size_bytes: int) -> bool:
        """False when the size or the stored checksum says these are not those bytes."""
        if self.size_bytes != size_bytes:
            return False
        return self.checksum_sha256 is None or self.checksum_sha256 == checksum_header(digest)


class ArtifactStore:
    """Talks to the bucket through the S3 client it is given."""

    def __init__(self, s3_client: Any, bucket: str) -> None:
        self._s3 = s3_client
        self.bucket = bucket

    def presign_upload(
        self, key: str, size_bytes: int, digest: str, ttl_seconds: int
    ) -> PresignedRequest:
        """A PUT URL bound to one key, one length and one checksum.

        Content-Length and x-amz-checksum-sha256 are signed headers, so the
        store refuses any other body; the client must send exactly ``headers``.
        """
        checksum = checksum_header(digest)
        url = self._s3.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ContentLength": size_bytes,
                "ChecksumSHA256": checksum,
            },
            ExpiresIn=ttl_seconds,
        )
        headers = {
            "Content-Length": str(size_bytes),
            "x-amz-checksum-sha256": checksum,
        }
        return PresignedRequest("PUT", url, headers, _expiry(ttl_seconds))

    def presign_download(self, key: str, ttl_seconds: int) -> PresignedRequest:
        url = self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl_seconds
        )
        return PresignedRequest("GET", url, {}, _expiry(ttl_seconds))

    def stat(self, key: str) -> StoredObject | None:
        from botocore.exceptions import ClientError

        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        version_id = head.get("VersionId")
        return StoredObject(
            key,
            int(head["ContentLength"]),
            version_id=version_id if version_id and version_id != "null" else None,
            etag=str(head.get("ETag", "")).strip('"'),
            checksum_sha256=head.get("ChecksumSHA256"),
        )

    def read_chunks(
        self,
        key: str,
        chunk_bytes: int = READ_CHUNK_BYTES,
        *,
        version: StoredObject | None = None,
    ) -> Iterator[bytes]:
        """Stream an object in bounded chunks, whatever its size: exactly the ``version``
        given (by version id, else by ETag), so what is hashed is what was looked at."""
        pinned: dict[str, str] = {}
        if version is not None and version.version_id:
            pinned["VersionId"] = version.version_id
        elif version is not None and version.etag:
            pinned["IfMatch"] = f'"{version.etag}"'
        body = self._s3.get_object(Bucket=self.bucket, Key=key, **pinned)["Body"]
        try:
            yield from body.iter_chunks(chunk_bytes)
        finally:
            body.close()

    def read_small(self, key: str, limit: int) -> bytes:
        """The whole object, or ``limit + 1`` bytes of it when it is longer."""
        body = self._s3.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{limit}")["Body"]
        try:
            data: bytes = body.read(limit + 1)
            return data
        finally:
            body.close()

    def quarantine(self, key: str) -> str:
        """Move an object out of ``artifacts/`` so nothing can deploy it."""
        target = quarantine_key(key)
        self._s3.copy_object(
            Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": key}
        )
        self._s3.delete_object(Bucket=self.bucket, Key=key)
        return target

    def copy(self, source: str, target: str) -> None:
        """Copy an object within ``artifacts/`` (an artifact handed to another app), the copy's
        SHA-256 checksum computed by the store."""
        if not (source.startswith(ARTIFACT_PREFIX) and target.startswith(ARTIFACT_PREFIX)):
            raise ValueError(f"{source} -> {target} leaves the artifacts")
        self._s3.copy_object(
            Bucket=self.bucket,
            Key=target,
            CopySource={"Bucket": self.bucket, "Key": source},
            ChecksumAlgorithm="SHA256",
        )

    def delete(self, key: str) -> None:
        """Remove an object under ``artifacts/`` (a missing one is no error).

        Where the bucket keeps versions this leaves a delete marker; the bucket's lifecycle
        rules expire the version it hides and then the marker. Quarantine is never touched:
        the control plane may only write there, and its objects expire by the same rules.
        """
        if not key.startswith(ARTIFACT_PREFIX):
            raise ValueError(f"{key} is not an artifact's key")
        self._s3.delete_object(Bucket=self.bucket, Key=key)

    def ping(self) -> None:
        self._s3.head_bucket(Bucket=self.bucket)


def _expiry(ttl_seconds: int) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=ttl_seconds)
