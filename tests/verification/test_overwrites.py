"""A verified object written over in storage stops being verified; a pending one is hashed
once per stored version however many readers ask at once."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.storage import quarantine_key
from infra.local.processes import Service
from tests.conftest import ADMIN_TOKEN, Api
from tests.uploads import random_bytes, request_upload, upload
from tests.verification.delivery import deliver_pending_events
from tests.verification.test_verification import exists

DELIVERY_TRIES = 100


@pytest.fixture
def s3(control_plane: Any) -> Any:
    return boto3.client("s3")


@pytest.fixture
def bucket(control_plane: Any) -> str:
    return str(control_plane.get_settings().bucket)


def verified(api: Api, app_name: str, data: bytes) -> dict[str, Any]:
    digest = upload(api, app_name, data)
    # The shared queue may hold other tests' events: deliver until this one has been seen.
    for _ in range(DELIVERY_TRIES):
        deliver_pending_events()
        shown = dict(api.get(f"/artifacts/{digest}").json)
        if shown["status"] != "pending":
            break
        time.sleep(0.1)
    assert shown["status"] == "verified", shown
    return shown


def hashes_of(log: Path, digest: str) -> int:
    """How many times the control plane hashed the artifact: one log line per hash."""
    count = 0
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("message") == "artifact verification" and entry.get("digest") == digest:
            count += 1
    return count


@pytest.mark.parametrize("same_size", [True, False], ids=["same size", "other size"])
def test_a_verified_object_overwritten_in_storage_is_quarantined_and_unverified(
    api: Api, app_name: str, s3: Any, bucket: str, same_size: bool
) -> None:
    honest = random_bytes(2048)
    shown = verified(api, app_name, honest)
    digest, key = shown["digest"], shown["key"]
    s3.put_object(Bucket=bucket, Key=key, Body=random_bytes(2048 if same_size else 999))
    deliver_pending_events()

    after = api.get(f"/artifacts/{digest}").json
    assert (after["status"], after["verified"]) == ("rejected", False)
    assert after["reason"] == "digest_mismatch"
    assert not exists(s3, bucket, key)
    assert exists(s3, bucket, quarantine_key(key))
    assert api.head(f"/artifacts/{digest}").status == 404
    refused = api.post("/deployments", {"app_name": app_name, "artifact_digest": digest})
    assert (refused.status, refused.json["code"]) == (409, "artifact_not_verified")
    # The owner can repair it: the same digest gets an upload URL again, not "duplicate".
    again = request_upload(api, app_name, honest).json
    assert again["duplicate"] is False
    upload(api, app_name, honest)
    deliver_pending_events()
    assert api.get(f"/artifacts/{digest}").json["status"] == "verified"


def test_an_overwrite_whose_event_is_lost_is_caught_by_the_deployability_check(
    api: Api, app_name: str, s3: Any, bucket: str
) -> None:
    shown = verified(api, app_name, random_bytes(1024))
    s3.put_object(Bucket=bucket, Key=shown["key"], Body=random_bytes(1024))
    # No event delivered: HEAD and deploy compare size, checksum and version themselves.
    refused = api.post("/deployments", {"app_name": app_name, "artifact_digest": shown["digest"]})
    assert (refused.status, refused.json["code"]) == (409, "artifact_not_verified")
    assert api.head(f"/artifacts/{shown['digest']}").status == 404
    assert api.get(f"/artifacts/{shown['digest']}").json["reason"] == "digest_mismatch"
    assert api.get(f"/apps/{app_name}/deployments").json["deployments"] == []
    deliver_pending_events()  # the late event changes nothing more
    assert api.get(f"/artifacts/{shown['digest']}").json["status"] == "rejected"


def test_the_same_bytes_written_again_stay_verified(
    api: Api, app_name: str, s3: Any, bucket: str
) -> None:
    data = random_bytes(1024)
    shown = verified(api, app_name, data)
    s3.put_object(Bucket=bucket, Key=shown["key"], Body=data)
    deliver_pending_events()
    assert api.get(f"/artifacts/{shown['digest']}").json["status"] == "verified"
    assert api.head(f"/artifacts/{shown['digest']}").status == 200


def test_concurrent_heads_on_a_pending_artifact_hash_it_once(
    api: Api, app_name: str, local_api: Service, s3: Any, bucket: str
) -> None:
    data = random_bytes(8 * 1024 * 1024)
    digest = hashlib.sha256(data).hexdigest()
    ticket = request_upload(api, app_name, data).json
    # Stored without its event reaching the handler: only the HEADs below verify it.
    s3.put_object(Bucket=bucket, Key=ticket["key"], Body=data)
    statuses: list[int] = []

    def head() -> None:
        request = urllib.request.Request(
            f"{local_api.url}/artifacts/{digest}",
            method="HEAD",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            statuses.append(answer.status)

    threads = [threading.Thread(target=head) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 10
    assert hashes_of(local_api.log, digest) == 1
    # A repeated event for the version already verified reads nothing either.
    deliver_pending_events()
    assert hashes_of(local_api.log, digest) == 1
