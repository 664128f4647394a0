"""Every upload is re-hashed and its signature checked before anything may run it."""

import hashlib
from typing import Any

import boto3
import pytest
from nacl.signing import SigningKey

from chalicelib.storage import quarantine_key
from tests.conftest import Api
from tests.uploads import put, random_bytes, request_upload, sign, upload
from tests.verification.delivery import deliver_pending_events


@pytest.fixture
def s3(control_plane: Any) -> Any:
    return boto3.client("s3")


def bucket(control_plane: Any) -> str:
    return str(control_plane.get_settings().bucket)


def exists(s3: Any, bucket_name: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket_name, Key=key)
    except ClientError:
        return False
    return True


def s3_event(bucket_name: str, key: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket_name}, "object": {"key": key, "size": 1}},
            }
        ]
    }


def test_upload_event_through_sqs_relay_verifies(api: Api, app_name: str) -> None:
    digest = upload(api, app_name, random_bytes())
    assert api.get(f"/artifacts/{digest}").json["status"] == "pending"
    assert deliver_pending_events() >= 1
    assert api.get(f"/artifacts/{digest}").json["status"] == "verified"
    assert api.head(f"/artifacts/{digest}").status == 200


def test_bytes_that_do_not_match_the_digest_are_quarantined(
    api: Api, app_name: str, s3: Any, control_plane: Any
) -> None:
    honest = random_bytes(2048)
    ticket = request_upload(api, app_name, honest).json
    # moto does not enforce the signed checksum, so other bytes reach the handler.
    tampered = random_bytes(2048)
    headers = {k: v for k, v in ticket["upload"]["headers"].items() if "checksum" not in k}
    response = put({**ticket["upload"], "headers": headers}, tampered)
    assert response.status_code == 200
    deliver_pending_events()
    shown = api.get(f"/artifacts/{ticket['digest']}").json
    assert (shown["status"], shown["reason"]) == ("rejected", "digest_mismatch")
    assert not exists(s3, bucket(control_plane), ticket["key"])
    assert exists(s3, bucket(control_plane), quarantine_key(ticket["key"]))
    assert api.head(f"/artifacts/{ticket['digest']}").status == 404
    refused = api.post("/deployments", {"app_name": app_name, "artifact_digest": ticket["digest"]})
    assert refused.status == 409
    assert refused.json["code"] == "artifact_not_verified"
    assert "digest_mismatch" in refused.json["message"]


def test_a_rejected_digest_can_be_uploaded_again_honestly(api: Api, app_name: str) -> None:
    honest = random_bytes(512)
    ticket = request_upload(api, app_name, honest).json
    headers = {k: v for k, v in ticket["upload"]["headers"].items() if "checksum" not in k}
    put({**ticket["upload"], "headers": headers}, random_bytes(512))
    deliver_pending_events()
    assert api.get(f"/artifacts/{ticket['digest']}").json["status"] == "rejected"
    upload(api, app_name, honest)
    deliver_pending_events()
    assert api.get(f"/artifacts/{ticket['digest']}").json["status"] == "verified"


def test_a_valid_signature_from_an_active_key_verifies(api: Api, app_name: str) -> None:
    key = SigningKey.generate()
    api.post(f"/apps/{app_name}/public-keys", {"public_key_hex": key.verify_key.encode().hex()})
    data = random_bytes()
    digest = upload(api, app_name, data, sign(key, hashlib.sha256(data).hexdigest()))
    deliver_pending_events()
    shown = api.get(f"/artifacts/{digest}").json
    assert (shown["status"], shown["signature"]) == ("verified", "valid")


def test_a_wrong_signature_is_rejected(api: Api, app_name: str) -> None:
    registered, other = SigningKey.generate(), SigningKey.generate()
    api.post(
        f"/apps/{app_name}/public-keys", {"public_key_hex": registered.verify_key.encode().hex()}
    )
    data = random_bytes()
    digest = upload(api, app_name, data, sign(other, hashlib.sha256(data).hexdigest()))
    deliver_pending_events()
    shown = api.get(f"/artifacts/{digest}").json
    assert (shown["status"], shown["reason"], shown["signature"]) == (
        "rejected",
        "bad_signature",
        "invalid",
    )
    assert api.head(f"/artifacts/{digest}").status == 404


def test_a_signature_from_a_deactivated_key_is_rejected(api: Api, app_name: str) -> None:
    key = SigningKey.generate()
    added = api.post(
        f"/apps/{app_name}/public-keys", {"public_key_hex": key.verify_key.encode().hex()}
    ).json
    api.delete(f"/apps/{app_name}/public-keys/{added['key_id']}")
    data = random_bytes()
    digest = upload(api, app_name, data, sign(key, hashlib.sha256(data).hexdigest()))
    deliver_pending_events()
    assert api.get(f"/artifacts/{digest}").json["reason"] == "bad_signature"


def test_an_unsigned_upload_to_an_app_that_requires_signatures_is_rejected(
    api: Api, unique_name: str
) -> None:
    api.post("/apps", {"name": unique_name, "require_signature": True})
    digest = upload(api, unique_name, random_bytes())
    deliver_pending_events()
    shown = api.get(f"/artifacts/{digest}").json
    assert (shown["status"], shown["reason"]) == ("rejected", "unsigned")


def test_the_same_event_twice_ends_in_one_state_counted_once(
    api: Api, app_name: str, control_plane: Any
) -> None:
    from chalicelib import verification
    from chalicelib.observability import metrics

    digest = upload(api, app_name, random_bytes())
    event = s3_event(bucket(control_plane), f"artifacts/{app_name}/{digest}/app.tar.gz")
    control_plane.artifact_uploaded(event, None)  # flushes its metrics
    first = api.get(f"/artifacts/{digest}").json
    assert first["status"] == "verified"

    again = verification.handle_s3_event(control_plane.get_store(), event)
    assert [o.status for o in again] == ["unchanged"]
    assert api.get(f"/artifacts/{digest}").json == first
    assert metrics.metric_set == {}  # nothing counted the second time


def test_a_200_mb_artifact_is_verified_in_bounded_memory(
    api: Api, app_name: str, control_plane: Any, tmp_path: Any
) -> None:
    import tracemalloc

    from chalicelib import verification
    from chalicelib.records import Artifact

    size = 200 * 1024 * 1024
    path = tmp_path / "big.bin"
    sha256 = hashlib.sha256()
    with path.open("wb") as handle:
        block = random_bytes(1024 * 1024)
        for index in range(size // len(block)):
            chunk = index.to_bytes(8, "big") + block[8:]
            sha256.update(chunk)
            handle.write(chunk)
    digest = sha256.hexdigest()
    ticket = request_upload(api, app_name, b"", digest=digest, size=size).json
    with path.open("rb") as body:
        response = put(ticket["upload"], body)
    assert response.status_code == 200

    tracemalloc.start()
    outcome = verification.verify_artifact(
        control_plane.get_store(), Artifact.get(digest, app_name)
    )
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert outcome.status == "verified"
    print(f"verified {size >> 20} MiB with a Python heap peak of {peak / 2**20:.1f} MiB")
    assert peak < size / 10


def test_an_event_for_an_object_nobody_asked_for_is_quarantined(
    api: Api, app_name: str, s3: Any, control_plane: Any
) -> None:
    stray = f"artifacts/{app_name}/{'e' * 64}/app.tar.gz"
    s3.put_object(Bucket=bucket(control_plane), Key=stray, Body=b"surprise")
    from chalicelib import verification

    outcomes = verification.handle_s3_event(
        control_plane.get_store(), s3_event(bucket(control_plane), stray)
    )
    assert [o.status for o in outcomes] == ["quarantined"]
    assert not exists(s3, bucket(control_plane), stray)
    assert exists(s3, bucket(control_plane), quarantine_key(stray))


def test_an_event_before_the_object_exists_changes_nothing(
    api: Api, app_name: str, control_plane: Any
) -> None:
    data = random_bytes()
    ticket = request_upload(api, app_name, data).json
    from chalicelib import verification

    early = verification.handle_s3_event(
        control_plane.get_store(), s3_event(bucket(control_plane), ticket["key"])
    )
    assert [o.status for o in early] == ["missing"]
    assert api.get(f"/artifacts/{ticket['digest']}").json["status"] == "pending"
    put(ticket["upload"], data)
    deliver_pending_events()
    assert api.get(f"/artifacts/{ticket['digest']}").json["status"] == "verified"


def test_a_lost_event_does_not_block_head_or_deploy(api: Api, app_name: str) -> None:
    data = random_bytes()
    ticket = request_upload(api, app_name, data).json
    put(ticket["upload"], data)
    # No relay run: HEAD verifies on demand.
    assert api.head(f"/artifacts/{ticket['digest']}").status == 200
    assert api.get(f"/artifacts/{ticket['digest']}").json["status"] == "verified"


def test_a_lost_event_does_not_block_a_deployment(api: Api, app_name: str) -> None:
    data = random_bytes()
    ticket = request_upload(api, app_name, data).json
    put(ticket["upload"], data)
    created = api.post("/deployments", {"app_name": app_name, "artifact_digest": ticket["digest"]})
    assert created.status == 201, created.body


def test_events_for_other_buckets_and_prefixes_are_ignored(control_plane: Any) -> None:
    from chalicelib import verification

    store = control_plane.get_store()
    assert verification.handle_s3_event(store, s3_event("someone-elses", "artifacts/x")) == []
    outside = verification.handle_s3_event(store, s3_event(bucket(control_plane), "other/x"))
    assert [o.status for o in outside] == ["unchanged"]


def test_bytes_of_another_length_than_declared_are_rejected(
    api: Api, app_name: str, s3: Any, control_plane: Any
) -> None:
    data = random_bytes(1000)
    ticket = request_upload(api, app_name, data, size=999).json
    # Sent without the signed length, which moto does not enforce: only the re-hash sees it.
    headers = {k: v for k, v in ticket["upload"]["headers"].items() if k != "Content-Length"}
    assert put({**ticket["upload"], "headers": headers}, data).status_code == 200
    deliver_pending_events()
    shown = api.get(f"/artifacts/{ticket['digest']}").json
    assert (shown["status"], shown["reason"]) == ("rejected", "size_mismatch")
    assert not exists(s3, bucket(control_plane), ticket["key"])
