"""Getting an artifact onto the platform: check, register, stream it to storage.

The bytes never pass through the control plane: ``POST /artifacts`` answers
with a presigned PUT, and the file is streamed from disk to that URL with
exactly the headers the control plane signed (they bind length and checksum).
The Aether token is never sent to storage.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import requests

from aether_cli.client import ApiClient
from aether_cli.errors import ApiError, InternalError, LocalIOError, NetworkError
from aether_cli.layers import DEPS, LayeredArtifact
from aether_cli.log import get_logger
from aether_cli.output import Output
from aether_cli.retry import describe_connection_error, send_with_retries

UPLOAD_TIMEOUT = (10.0, 300.0)  # storage may hash a large body before it answers
_CHUNK = 256 * 1024


class NoAuth(requests.auth.AuthBase):
    """Attached explicitly so requests never adds credentials from ~/.netrc."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


class ProgressReader:
    """A file body for requests that reports how many bytes went out.

    ``__len__`` lets requests send Content-Length instead of chunked encoding;
    ``read`` keeps memory to one chunk whatever the artifact's size.
    """

    def __init__(self, handle: IO[bytes], length: int, advance: Callable[[int], None]) -> None:
        self._handle = handle
        self._length = length
        self._advance = advance

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(max(size, _CHUNK))
        self._advance(len(chunk))
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(_CHUNK):
            yield chunk


@dataclass(frozen=True)
class LayerUpload:
    role: str
    digest: str
    size: int
    path: Path
    uploaded: bool

    def to_json(self) -> dict[str, object]:
        return {
            "role": self.role,
            "digest": self.digest,
            "size": self.size,
            "path": str(self.path),
            "uploaded": self.uploaded,
        }


@dataclass(frozen=True)
class Published:
    """What publishing sent: per layer, and the bytes in all (manifest included)."""

    layers: tuple[LayerUpload, ...]
    uploaded_bytes: int

    @property
    def uploaded(self) -> bool:
        return self.uploaded_bytes > 0


def ensure_layered_uploaded(
    client: ApiClient,
    output: Output,
    *,
    app: str,
    artifact: LayeredArtifact,
    runtime: str,
    platform: str,
    signature_hex: str | None,
) -> Published:
    """Make the platform hold the manifest and every layer, uploading only what it lacks.

    A layer the platform holds for this app (an unchanged ``node_modules``) is not sent
    again; the manifest goes last, once every layer it names is there. Only the
    dependencies layer is asked about first (``HEAD``): it is usually held, and the app
    layer usually new, and ``POST /artifacts`` answers without an upload for a held one.
    The whole artifact is asked about first only when no layer was packed anew: a
    redeploy of what was deployed before is then one ``HEAD``.
    """
    log = get_logger()
    held = not artifact.repacked and client.artifact_exists(artifact.digest, app)
    if held:
        log.info("artifact %s is already on the platform; nothing to upload", artifact.digest[:12])
    layers: list[LayerUpload] = []
    sent = 0
    for role, packed in artifact.layers:
        uploaded = not held and _upload(
            client,
            output,
            app=app,
            path=packed.artifact,
            digest=packed.digest,
            size_bytes=packed.size_bytes,
            runtime=runtime,
            platform=platform,
            signature_hex=None,
            kind="layer",
            what=f"{role} layer",
            check_first=role == DEPS,
        )
        sent += packed.size_bytes if uploaded else 0
        layers.append(
            LayerUpload(role, packed.digest, packed.size_bytes, packed.artifact, uploaded)
        )
    if not held and _upload(
        client,
        output,
        app=app,
        path=artifact.manifest,
        digest=artifact.digest,
        size_bytes=artifact.manifest_bytes,
        runtime=runtime,
        platform=platform,
        signature_hex=signature_hex,
        kind="manifest",
        what="manifest",
        check_first=False,
    ):
        sent += artifact.manifest_bytes
    return Published(tuple(layers), sent)


def ensure_uploaded(
    client: ApiClient,
    output: Output,
    *,
    app: str,
    artifact: Path,
    digest: str,
    size_bytes: int,
    runtime: str,
    platform: str,
    signature_hex: str | None,
) -> bool:
    """Make the platform hold the single archive ``artifact``; True when bytes were uploaded."""
    return _upload(
        client,
        output,
        app=app,
        path=artifact,
        digest=digest,
        size_bytes=size_bytes,
        runtime=runtime,
        platform=platform,
        signature_hex=signature_hex,
        kind="archive",
        what="artifact",
    )


def _upload(
    client: ApiClient,
    output: Output,
    *,
    app: str,
    path: Path,
    digest: str,
    size_bytes: int,
    runtime: str,
    platform: str,
    signature_hex: str | None,
    kind: str,
    what: str,
    check_first: bool = True,
) -> bool:
    log = get_logger()
    if check_first and client.artifact_exists(digest, app):
        log.info("%s %s is already on the platform; nothing to upload", what, digest[:12])
        return False
    artifact = path

    def request_upload() -> dict[str, object]:
        return client.create_artifact(
            app=app,
            digest=digest,
            size_bytes=size_bytes,
            runtime=runtime,
            platform=platform,
            signature_hex=signature_hex,
            kind=kind,
        )

    try:
        grant = request_upload()
    except ApiError as exc:
        if exc.status != 404 or exc.code != "not_found":
            raise
        log.info("app %s is new; registering it", app)
        try:
            client.create_app(app)
        except ApiError as create_exc:
            if create_exc.status != 409:  # someone registered it meanwhile: fine
                raise
        grant = request_upload()
    upload = grant.get("upload")
    if not isinstance(upload, dict):
        log.info("the platform already has %s %s; nothing to upload", what, digest[:12])
        return False
    url = upload.get("url")
    headers = upload.get("headers") or {}
    method = str(upload.get("method") or "PUT").upper()
    if not isinstance(url, str) or not isinstance(headers, dict) or method != "PUT":
        raise InternalError("POST /artifacts returned an upload grant this CLI cannot use")
    put_file(url, {str(k): str(v) for k, v in headers.items()}, artifact, size_bytes, output)
    return True


def put_file(
    url: str,
    headers: Mapping[str, str],
    path: Path,
    size_bytes: int,
    output: Output,
    *,
    retries: int = 3,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Stream ``path`` to a presigned URL, retrying connection errors and 5xx."""
    log = get_logger()
    try:
        actual = path.stat().st_size
    except OSError as exc:
        raise LocalIOError(f"cannot read the artifact {path}: {exc.strerror}") from exc
    if actual != size_bytes:
        raise InternalError(f"{path} changed since it was packed ({actual} != {size_bytes} bytes)")
    storage = requests.Session()
    # Only the signed headers: no bearer token, no defaults that could
    # disagree with what was signed.
    storage.headers.clear()
    host = re.sub(r"^(https?://[^/?#]+).*$", r"\1", url)

    def send() -> requests.Response:
        with path.open("rb") as handle, output.progress(size_bytes, "uploading") as advance:
            return storage.put(
                url,
                data=ProgressReader(handle, size_bytes, advance),
                headers=dict(headers),
                auth=NoAuth(),
                timeout=UPLOAD_TIMEOUT,
            )

    try:
        response = send_with_retries(
            send,
            what=f"upload to {host}",
            retries=retries,
            backoff=backoff,
            transient=lambda answer: answer.status_code >= 500,
            sleep=sleep,
        )
    # A ConnectionError is an OSError too: it must be told apart from a local read first.
    except (requests.ConnectionError, requests.Timeout) as exc:
        reason = describe_connection_error(exc)
        raise NetworkError(f"cannot upload the artifact to {host}: {reason}") from exc
    except OSError as exc:
        raise LocalIOError(f"cannot read the artifact {path}: {exc.strerror}") from exc
    finally:
        storage.close()
    if response.status_code >= 400:
        raise _storage_error(response, host)
    log.info("uploaded %s bytes", f"{size_bytes:,}")


def _storage_error(response: requests.Response, host: str) -> Exception:
    """S3-style XML errors carry <Code> and <Message>; show those, not the XML."""
    text = response.text or ""
    code = re.search(r"<Code>([^<]*)</Code>", text)
    message = re.search(r"<Message>([^<]*)</Message>", text)
    detail = ": ".join(m.group(1) for m in (code, message) if m) or response.reason or "no details"
    failure = f"storage at {host} refused the upload (HTTP {response.status_code}): {detail}"
    if response.status_code >= 500:
        return NetworkError(failure)
    return InternalError(failure, code="upload_rejected")
