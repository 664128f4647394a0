"""On the embedded stack (SeaweedFS, its metadata log, the relay): an object written over a
verified artifact straight in the store is noticed from its event and quarantined, and the
verified bytes stay in the bucket's versions."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import boto3
import requests

from infra.local.private import PrivateStack


def call(stack: PrivateStack, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {stack.env['AETHER_TOKEN']}", **kwargs.pop("headers", {})}
    return requests.request(method, stack.api_url + path, headers=headers, timeout=30, **kwargs)


def status_becomes(stack: PrivateStack, digest: str, wanted: str) -> dict[str, Any]:
    """The artifact once the relay has delivered its event (bounded; no HEAD, which would
    verify it on the spot)."""
    shown: dict[str, Any] = {}
    for _ in range(300):
        shown = call(stack, "GET", f"/artifacts/{digest}").json()
        if shown["status"] == wanted:
            return shown
        time.sleep(0.1)
    raise AssertionError(f"never {wanted}: {shown}")


def test_an_overwrite_in_the_store_is_quarantined_from_its_event(
    stack: PrivateStack, tmp_path: Path
) -> None:
    app = "overwritten"
    assert call(stack, "POST", "/apps", json={"name": app}).status_code == 201
    data = os.urandom(4096)
    digest = hashlib.sha256(data).hexdigest()
    ticket = call(
        stack,
        "POST",
        "/artifacts",
        json={"app_name": app, "size_bytes": len(data)},
        headers={"x-aether-artifact-digest": digest},
    ).json()
    upload = ticket["upload"]
    put = requests.put(upload["url"], data=data, headers=upload["headers"], timeout=30)
    assert put.status_code == 200, put.text
    status_becomes(stack, digest, "verified")

    s3 = boto3.client(
        "s3",
        endpoint_url=stack.env["AETHER_S3_ENDPOINT_URL"],
        aws_access_key_id=stack.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=stack.env["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    bucket = stack.env["AETHER_BUCKET"]
    s3.put_object(Bucket=bucket, Key=ticket["key"], Body=os.urandom(4096))

    shown = status_becomes(stack, digest, "rejected")
    assert shown["reason"] == "digest_mismatch"
    assert call(stack, "HEAD", f"/artifacts/{digest}").status_code == 404
    versions = s3.list_object_versions(Bucket=bucket, Prefix=ticket["key"]).get("Versions", [])
    kept = [
        s3.get_object(Bucket=bucket, Key=ticket["key"], VersionId=v["VersionId"])["Body"].read()
        for v in versions
        if v["Key"] == ticket["key"]
    ]
    assert data in kept  # the verified bytes are in the bucket's history
