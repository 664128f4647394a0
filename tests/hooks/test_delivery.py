"""Events reach a real receiver through the SQS queue and its consumer, signed, retried while
the receiver fails, and given up on after the bound (a few seconds in this suite)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import pytest
from aether_cli.hook_signatures import InvalidSignature, verify

from tests.conftest import APPS_NAMESPACE, Api
from tests.hooks.conftest import Delivery, Receiver, add_hook, settled
from tests.uploads import put, random_bytes, request_upload, upload
from tests.verification.delivery import deliver_pending_events

pytestmark = pytest.mark.usefixtures("hook_consumer", "healthy_cluster")

PAYLOAD_FIELDS = {
    "id",
    "type",
    "occurred_at",
    "app",
    "digest",
    "release",
    "deployment_id",
    "reason",
}


def verified(receiver: Receiver, secret: str, delivery: Delivery) -> dict[str, Any]:
    """The event, once its signature checks out with the subscription's secret."""
    verify(
        secret,
        delivery.body,
        delivery.headers.get("X-Aether-Timestamp"),
        delivery.headers.get("X-Aether-Signature"),
    )
    event = delivery.event
    assert set(event) == PAYLOAD_FIELDS
    assert delivery.headers["X-Aether-Event"] == event["type"]
    assert delivery.headers["X-Aether-Delivery"] == event["id"]
    assert delivery.headers["Content-Type"] == "application/json"
    return event


def wait_for_deployment(api: Api, deployment_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = api.get(f"/deployments/{deployment_id}").json
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"deployment never finished: {body}")


def test_an_upload_is_announced_uploaded_then_verified(
    api: Api, app_name: str, receiver: Receiver
) -> None:
    hook = add_hook(api, receiver.url, app_name, events=["artifact.uploaded", "artifact.verified"])
    digest = upload(api, app_name, random_bytes())
    deliver_pending_events()
    (arrived,) = receiver.wait_for("artifact.verified")
    event = verified(receiver, hook["secret"], arrived)
    assert (event["app"], event["digest"], event["reason"]) == (app_name, digest, None)
    assert event["release"] is None and event["deployment_id"] is None
    (landed,) = receiver.wait_for("artifact.uploaded")
    assert verified(receiver, hook["secret"], landed)["digest"] == digest
    assert landed.event["id"] != event["id"]


def test_a_rejected_upload_is_announced_with_its_reason(
    api: Api, app_name: str, receiver: Receiver
) -> None:
    hook = add_hook(api, receiver.url, app_name, events=["artifact.rejected"])
    honest = random_bytes(1024)
    ticket = request_upload(api, app_name, honest).json
    headers = {k: v for k, v in ticket["upload"]["headers"].items() if "checksum" not in k}
    assert put({**ticket["upload"], "headers": headers}, random_bytes(1024)).status_code == 200
    deliver_pending_events()
    (arrived,) = receiver.wait_for("artifact.rejected")
    event = verified(receiver, hook["secret"], arrived)
    assert (event["digest"], event["reason"]) == (ticket["digest"], "digest_mismatch")
    assert receiver.of_type("artifact.verified") == []


def test_a_release_and_its_rollout_are_announced_without_config_values(
    api: Api, app_name: str, receiver: Receiver
) -> None:
    hook = add_hook(api, receiver.url, app_name, events=["release.created", "deployment.succeeded"])
    digest = upload(api, app_name, random_bytes())
    deliver_pending_events()
    secret_value = "hunter2-" + hashlib.sha256(app_name.encode()).hexdigest()[:12]
    created = api.post(
        "/deployments",
        {"app_name": app_name, "artifact_digest": digest, "env": {"DB_PASSWORD": secret_value}},
    )
    assert created.status == 201, created.body
    deployment_id = created.json["deployment_id"]
    assert wait_for_deployment(api, deployment_id)["status"] == "succeeded"
    (release,) = receiver.wait_for("release.created")
    (succeeded,) = receiver.wait_for("deployment.succeeded")
    for delivery in (release, succeeded):
        event = verified(receiver, hook["secret"], delivery)
        assert (event["app"], event["digest"]) == (app_name, digest)
        assert (event["release"], event["deployment_id"]) == ("v1", deployment_id)
    assert succeeded.event["reason"] is None
    everything = b"".join(d.body + repr(d.headers).encode() for d in receiver.deliveries)
    assert secret_value.encode() not in everything
    assert b"DB_PASSWORD" not in everything
    assert receiver.of_type("artifact.verified") == []  # not subscribed


def test_a_failed_rollout_is_announced_with_its_reason(
    api: Api, app_name: str, receiver: Receiver, kube_simulator: Any
) -> None:
    hook = add_hook(api, receiver.url, app_name, events=["deployment.failed"])
    kube_simulator.crash_loop(APPS_NAMESPACE, app_name)
    digest = upload(api, app_name, random_bytes())
    deliver_pending_events()
    created = api.post("/deployments", {"app_name": app_name, "artifact_digest": digest})
    assert created.status == 201, created.body
    done = wait_for_deployment(api, created.json["deployment_id"])
    assert done["status"] == "failed"
    (arrived,) = receiver.wait_for("deployment.failed")
    event = verified(receiver, hook["secret"], arrived)
    assert event["deployment_id"] == done["deployment_id"]
    assert event["reason"] == done["reason"] and event["reason"]


def test_a_global_subscription_hears_every_app(api: Api, app_name: str, receiver: Receiver) -> None:
    hook = add_hook(api, receiver.url, None, events=["artifact.verified"])
    try:
        digest = upload(api, app_name, random_bytes())
        deliver_pending_events()
        receiver.wait_for("artifact.verified")
        mine = [d for d in receiver.of_type("artifact.verified") if d.event["digest"] == digest]
        assert verified(receiver, hook["secret"], mine[0])["app"] == app_name
    finally:
        api.delete(f"/hooks/{hook['hook_id']}")


def test_a_tampered_body_or_an_old_timestamp_fails_verification(
    api: Api, app_name: str, receiver: Receiver
) -> None:
    hook = add_hook(api, receiver.url, app_name, events=["artifact.verified"])
    upload(api, app_name, random_bytes())
    deliver_pending_events()
    (arrived,) = receiver.wait_for("artifact.verified")
    timestamp = arrived.headers["X-Aether-Timestamp"]
    signature = arrived.headers["X-Aether-Signature"]
    secret = hook["secret"]
    verify(secret, arrived.body, timestamp, signature)
    tampered = arrived.body.replace(app_name.encode(), b"another-app")
    with pytest.raises(InvalidSignature, match="does not match"):
        verify(secret, tampered, timestamp, signature)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify("whsec_not-the-secret", arrived.body, timestamp, signature)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify(secret, arrived.body, str(int(timestamp) + 1), signature)
    with pytest.raises(InvalidSignature, match="away from now"):
        verify(secret, arrived.body, timestamp, signature, now=int(timestamp) + 301)
    with pytest.raises(InvalidSignature, match="missing"):
        verify(secret, arrived.body, None, signature)
    with pytest.raises(InvalidSignature, match="missing"):
        verify(secret, arrived.body, timestamp, None)


def test_a_receiver_that_fails_three_times_gets_the_event_once_it_recovers(
    api: Api, app_name: str, receivers: Callable[..., Receiver]
) -> None:
    flaky = receivers(answers=[500, 500, 500])
    hook = add_hook(api, flaky.url, app_name, events=["artifact.verified"])
    upload(api, app_name, random_bytes())
    deliver_pending_events()
    attempts = flaky.wait_for("artifact.verified", count=4)
    assert len({d.headers["X-Aether-Delivery"] for d in attempts}) == 1
    (delivery,) = settled(api, hook["hook_id"])
    assert delivery["status"] == "delivered"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 500, 200]
    assert delivery["attempts"][0]["error"] == "answered HTTP 500"
    assert all(a["latency_ms"] >= 0 and a["at"] for a in delivery["attempts"])
    assert delivery["event_id"] == attempts[0].event["id"]


def test_a_receiver_that_never_answers_is_marked_failed_after_the_bound(
    api: Api, app_name: str, receivers: Callable[..., Receiver]
) -> None:
    dead = receivers(hang=True)
    hook = add_hook(api, dead.url, app_name, events=["artifact.verified"])
    upload(api, app_name, random_bytes())
    deliver_pending_events()
    (delivery,) = settled(api, hook["hook_id"])
    assert delivery["status"] == "failed"
    assert len(delivery["attempts"]) >= 2
    assert {a["status_code"] for a in delivery["attempts"]} == {None}
    assert {a["error"] for a in delivery["attempts"]} == {"no answer within 1 s"}


def test_a_removed_subscription_gets_nothing_more(
    api: Api, app_name: str, receiver: Receiver
) -> None:
    hook = add_hook(api, receiver.url, app_name, events=["artifact.verified"])
    assert api.delete(f"/hooks/{hook['hook_id']}").status == 200
    after = add_hook(api, receiver.url, app_name, events=["artifact.verified"])
    upload(api, app_name, random_bytes())
    deliver_pending_events()
    (arrived,) = receiver.wait_for("artifact.verified")
    assert arrived.headers["X-Aether-Hook"] == after["hook_id"]


def test_a_destroyed_app_is_announced_and_its_hooks_deleted(
    api: Api, app_name: str, receiver: Receiver
) -> None:
    hook = add_hook(api, receiver.url, app_name, events=["app.destroyed"])
    destroyed = api.delete(f"/apps/{app_name}")
    assert destroyed.status == 200, destroyed.body
    (arrived,) = receiver.wait_for("app.destroyed")
    assert verified(receiver, hook["secret"], arrived)["app"] == app_name
    assert api.get(f"/hooks/{hook['hook_id']}").status == 404
    assert api.post("/apps", {"name": app_name}).status == 201
    assert api.get(f"/hooks?app_name={app_name}").json["hooks"] == []
