"""A presigned PUT against SeaweedFS takes the signed bytes and nothing else.

Real HTTP with ``requests`` against a server that checks signatures. Every
refusal is a 4xx and leaves no object under the key: a refused upload writes
nothing and loses nothing.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests

from chalicelib.storage import ArtifactStore, PresignedRequest, artifact_key

APP = "hello-express"
ARTIFACT_BYTES = 64 * 1024
TTL_SECONDS = 900
HTTP_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Artifact:
    body: bytes
    digest: str
    key: str


@pytest.fixture
def store(s3_client: Any, bucket: str) -> ArtifactStore:
    return ArtifactStore(s3_client, bucket)


def new_artifact(size: int = ARTIFACT_BYTES) -> Artifact:
    body = os.urandom(size)
    digest = hashlib.sha256(body).hexdigest()
    return Artifact(body, digest, artifact_key(APP, digest))


def presign(store: ArtifactStore, artifact: Artifact) -> PresignedRequest:
    return store.presign_upload(artifact.key, len(artifact.body), artifact.digest, TTL_SECONDS)


def put(url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.put(url, data=body, headers=headers, timeout=HTTP_TIMEOUT_SECONDS)


def assert_refused(response: requests.Response | http.client.HTTPResponse) -> None:
    status = response.status_code if isinstance(response, requests.Response) else response.status
    assert 400 <= status < 500, f"expected a refusal, got {status}"


def assert_no_object(s3_client: Any, bucket: str, key: str) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as refused:
        s3_client.head_object(Bucket=bucket, Key=key)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_honest_upload_is_stored_byte_for_byte(
    store: ArtifactStore, s3_client: Any, bucket: str
) -> None:
    artifact = new_artifact()
    upload = presign(store, artifact)

    response = put(upload.url, artifact.body, upload.headers)

    assert response.status_code == 200, response.text
    stored = s3_client.get_object(Bucket=bucket, Key=artifact.key)["Body"].read()
    assert stored == artifact.body


def test_unsigned_upload_is_refused(s3_client: Any, bucket: str) -> None:
    artifact = new_artifact()
    url = f"{s3_client.meta.endpoint_url}/{bucket}/{artifact.key}"

    response = put(url, artifact.body, {})

    assert_refused(response)
    assert_no_object(s3_client, bucket, artifact.key)


def test_upload_with_tampered_signature_is_refused(
    store: ArtifactStore, s3_client: Any, bucket: str
) -> None:
    artifact = new_artifact()
    upload = presign(store, artifact)
    signature = dict(parse_qsl(urlsplit(upload.url).query))["X-Amz-Signature"]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]

    response = put(
        with_query(upload.url, **{"X-Amz-Signature": flipped}), artifact.body, upload.headers
    )

    assert_refused(response)
    assert_no_object(s3_client, bucket, artifact.key)


def test_upload_after_expiry_is_refused(
    store: ArtifactStore, s3_client: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import botocore.auth

    # Sign an hour ago with the longest TTL instead of waiting for it to run out.
    now = botocore.auth.get_current_datetime
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: now() - timedelta(hours=1))
    artifact = new_artifact()
    upload = presign(store, artifact)
    monkeypatch.undo()

    response = put(upload.url, artifact.body, upload.headers)

    assert_refused(response)
    assert_no_object(s3_client, bucket, artifact.key)


@pytest.mark.parametrize("length_change", [-1, 1], ids=["shorter", "longer"])
def test_upload_with_a_body_length_other_than_signed_is_refused(
    store: ArtifactStore, s3_client: Any, bucket: str, length_change: int
) -> None:
    artifact = new_artifact()
    upload = presign(store, artifact)
    body = artifact.body[:length_change] if length_change < 0 else artifact.body + b"\0"
    # requests always sends the body's own length, so say so openly.
    headers = {**upload.headers, "Content-Length": str(len(body))}

    response = put(upload.url, body, headers)

    assert_refused(response)
    assert_no_object(s3_client, bucket, artifact.key)


def test_upload_cut_short_of_the_signed_length_is_refused(
    store: ArtifactStore, s3_client: Any, bucket: str
) -> None:
    artifact = new_artifact()
    upload = presign(store, artifact)
    url = urlsplit(upload.url)
    assert url.hostname is not None
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=HTTP_TIMEOUT_SECONDS)
    try:
        connection.putrequest("PUT", f"{url.path}?{url.query}", skip_accept_encoding=True)
        for name, value in upload.headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        connection.send(artifact.body[: len(artifact.body) // 2])
        assert connection.sock is not None
        connection.sock.shutdown(socket.SHUT_WR)  # the signed length never arrives

        response = connection.getresponse()
    finally:
        connection.close()

    assert_refused(response)
    assert_no_object(s3_client, bucket, artifact.key)


def test_upload_of_other_bytes_with_the_signed_length_is_refused(
    store: ArtifactStore, s3_client: Any, bucket: str
) -> None:
    artifact = new_artifact()
    upload = presign(store, artifact)
    other = os.urandom(len(artifact.body))

    response = put(upload.url, other, upload.headers)

    assert_refused(response)
    assert_no_object(s3_client, bucket, artifact.key)


def test_upload_of_other_bytes_with_their_own_checksum_is_refused(
    store: ArtifactStore, s3_client: Any, bucket: str
) -> None:
    artifact = new_artifact()
    upload = presign(store, artifact)
    other = os.urandom(len(artifact.body))
    own_checksum = base64.b64encode(hashlib.sha256(other).digest()).decode()

    response = put(upload.url, other, {**upload.headers, "x-amz-checksum-sha256": own_checksum})

    assert_refused(response)
    assert_no_object(s3_client, bucket, artifact.key)


def test_signature_for_one_key_is_refused_on_another_key(
    store: ArtifactStore, s3_client: Any, bucket: str
) -> None:
    artifact = new_artifact()
    upload = presign(store, artifact)
    other_key = artifact_key(APP, hashlib.sha256(artifact.digest.encode()).hexdigest())
    url = urlsplit(upload.url)
    moved = urlunsplit(url._replace(path=f"/{bucket}/{other_key}"))

    response = put(moved, artifact.body, upload.headers)

    assert_refused(response)
    assert_no_object(s3_client, bucket, other_key)
    assert_no_object(s3_client, bucket, artifact.key)


def test_refused_upload_leaves_the_stored_object_intact(
    store: ArtifactStore, s3_client: Any, bucket: str
) -> None:
    artifact = new_artifact()
    upload = presign(store, artifact)
    assert put(upload.url, artifact.body, upload.headers).status_code == 200

    response = put(upload.url, os.urandom(len(artifact.body)), upload.headers)

    assert_refused(response)
    stored = s3_client.get_object(Bucket=bucket, Key=artifact.key)["Body"].read()
    assert stored == artifact.body
