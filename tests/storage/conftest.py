"""SeaweedFS once per session, a client for it, and an artifact bucket."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.seaweedfs import SeaweedS3, start_seaweedfs

BUCKET = "aether-artifacts"


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedS3]:
    server = start_seaweedfs()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_client(seaweedfs: SeaweedS3) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=seaweedfs.endpoint_url,
        aws_access_key_id=seaweedfs.access_key,
        aws_secret_access_key=seaweedfs.secret_key,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


@pytest.fixture(scope="session")
def bucket(s3_client: Any) -> str:
    s3_client.create_bucket(Bucket=BUCKET)
    return BUCKET
