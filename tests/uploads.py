"""Uploading through the platform's presigned URLs, as the CLI does."""

from __future__ import annotations

import hashlib
import os
from typing import Any, BinaryIO

import requests
from nacl.signing import SigningKey

from chalicelib.contract import default_runtime
from tests.conftest import Api, Reply


def random_bytes(size: int = 4096) -> bytes:
    return os.urandom(size)


def sign(key: SigningKey, digest: str) -> str:
    return key.sign(digest.encode()).signature.hex()


def request_upload(
    api: Api,
    app_name: str,
    data: bytes,
    signature: str | None = None,
    digest: str | None = None,
    size: int | None = None,
    kind: str | None = None,
) -> Reply:
    headers = {"x-aether-artifact-digest": digest or hashlib.sha256(data).hexdigest()}
    if signature:
        headers["x-aether-signature"] = signature
    body: dict[str, Any] = {"app_name": app_name, "size_bytes": len(data) if size is None else size}
    if kind is not None:
        body["kind"] = kind
    return api.post("/artifacts", {**body, "runtime": default_runtime()}, headers=headers)


def put(upload: dict[str, Any], data: bytes | BinaryIO) -> requests.Response:
    return requests.request(
        upload["method"], upload["url"], data=data, headers=upload["headers"], timeout=30
    )


def upload(
    api: Api, app_name: str, data: bytes, signature: str | None = None, kind: str | None = None
) -> str:
    """Request, PUT, and return the digest; fails loudly on any refusal."""
    reply = request_upload(api, app_name, data, signature, kind=kind)
    assert reply.status == 201, reply.body
    if reply.json["upload"] is not None:
        response = put(reply.json["upload"], data)
        assert response.status_code == 200, response.text
    return str(reply.json["digest"])
