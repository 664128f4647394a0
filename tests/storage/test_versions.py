"""The embedded store keeps versions, and each new version of a key is an upload event."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from infra.local import seaweedfs as weed
from infra.local.filer_events import Cursor, FilerEvents
from tests.seaweedfs import SeaweedS3

KEY = "artifacts/web/" + "ab" * 32 + "/app.tar.gz"


def test_every_version_written_to_a_versioned_bucket_is_an_event_for_its_key(
    seaweedfs: SeaweedS3, s3_client: Any, tmp_path: Path
) -> None:
    bucket = "aether-versioned"
    s3_client.create_bucket(Bucket=bucket)
    s3_client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3_client.put_object(Bucket=bucket, Key=KEY, Body=b"verified bytes")
    second = s3_client.put_object(Bucket=bucket, Key=KEY, Body=b"written over")
    assert first["VersionId"] != second["VersionId"]
    head = s3_client.head_object(Bucket=bucket, Key=KEY)
    assert head["VersionId"] == second["VersionId"]
    kept = s3_client.get_object(Bucket=bucket, Key=KEY, VersionId=first["VersionId"])
    assert kept["Body"].read() == b"verified bytes"  # an overwrite loses nothing

    delivered: list[dict[str, Any]] = []
    events = FilerEvents(
        weed=weed.WEED,
        filer=weed.filer_address(seaweedfs.ports),
        bucket=bucket,
        cursor=Cursor(tmp_path / "cursor.json"),
        s3=s3_client,
        deliver=delivered.append,
        environment=weed.environment(seaweedfs.workdir),
    )
    stop = threading.Event()
    follower = threading.Thread(target=events.follow, args=(stop,), daemon=True)
    follower.start()
    try:
        for _ in range(100):
            if len(delivered) >= 2:
                break
            time.sleep(0.1)
    finally:
        stop.set()
        follower.join(10)
    objects = [event["Records"][0]["s3"]["object"] for event in delivered]
    assert {found["key"] for found in objects} == {KEY}
    # At least once: a loaded filer may stream a change twice; each version comes, in order.
    sizes = [found["size"] for found in objects]
    assert list(dict.fromkeys(sizes)) == [len(b"verified bytes"), len(b"written over")]
