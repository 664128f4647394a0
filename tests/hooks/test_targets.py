"""Where a delivery may connect, checked when it is made; the hooks' settings; SNS."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from chalicelib import hook_delivery
from chalicelib.settings import HookSettings, Settings
from tests.conftest import Api, _reset_caches
from tests.hooks.conftest import Receiver, add_hook
from tests.uploads import random_bytes, upload
from tests.verification.delivery import deliver_pending_events

PRODUCTION = HookSettings(timeout_seconds=1, allow_loopback=False)


def test_a_name_that_resolves_to_loopback_is_refused_at_delivery() -> None:
    with pytest.raises(hook_delivery.TargetRefused, match="is a loopback address"):
        hook_delivery._checked_address("localhost", 443, allow_loopback=False)
    assert hook_delivery._checked_address("localhost", 443, allow_loopback=True) in {
        "127.0.0.1",
        "::1",
    }


def test_a_delivery_to_a_private_address_is_a_failed_attempt_not_a_connection(
    receiver: Receiver,
) -> None:
    payload = {"id": "e1", "type": "artifact.verified", "app": "a"}
    url = receiver.url.replace("127.0.0.1", "localhost")
    answer = hook_delivery.post(url, payload, "whsec_x", "h1", PRODUCTION)
    assert answer.status_code is None and not answer.delivered
    assert answer.error is not None and "may not go to" in answer.error
    assert receiver.deliveries == []


def test_an_answer_that_is_not_2xx_or_none_at_all_is_told_apart(receiver: Receiver) -> None:
    allowed = HookSettings(timeout_seconds=1, allow_loopback=True)
    payload = {"id": "e2", "type": "artifact.verified", "app": "a"}
    assert hook_delivery.post(receiver.url, payload, "whsec_x", "h1", allowed).delivered
    closed = receiver.url.rsplit(":", 1)[0] + ":9/events"  # discard: nothing listens
    refused = hook_delivery.post(closed, payload, "whsec_x", "h1", allowed)
    assert refused.status_code is None and refused.error


def test_hook_settings_default_to_production_and_refuse_a_bad_switch() -> None:
    hooks = Settings.from_env({"AETHER_STAGE": "prod"}).hooks
    assert (hooks.queue_name, hooks.allow_loopback, hooks.topic_arn) == (
        "aether-prod-hooks",
        False,
        None,
    )
    assert (hooks.timeout_seconds, hooks.backoff_seconds, hooks.retry_seconds) == (5, 30, 86400)
    with pytest.raises(ValueError, match="AETHER_HOOKS_ALLOW_LOOPBACK"):
        Settings.from_env({"AETHER_HOOKS_ALLOW_LOOPBACK": "maybe"})
    with pytest.raises(ValueError, match="AETHER_HOOK_RETRY_SECONDS"):
        Settings.from_env({"AETHER_HOOK_RETRY_SECONDS": "0"})


@pytest.fixture
def topic(control_plane: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    """An SNS topic the control plane publishes to, read through an SQS subscription."""
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    arn = sns.create_topic(Name="aether-test-events")["TopicArn"]
    queue = sqs.create_queue(QueueName="aether-test-events-reader")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
    )
    monkeypatch.setenv("AETHER_HOOKS_TOPIC_ARN", arn)
    _reset_caches(control_plane)
    yield sqs, queue
    monkeypatch.undo()
    _reset_caches(control_plane)


@pytest.mark.usefixtures("hook_consumer")
def test_every_event_is_also_published_to_the_topic(
    api: Api, app_name: str, topic: tuple[Any, str]
) -> None:
    sqs, queue = topic
    digest = upload(api, app_name, random_bytes())
    deliver_pending_events()
    deadline = time.monotonic() + 30
    published: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            published.append(json.loads(message["Body"]))
        if any(e["type"] == "artifact.verified" and e["digest"] == digest for e in published):
            break
        time.sleep(0.05)
    mine = {e["type"] for e in published if e["digest"] == digest}
    assert mine == {"artifact.uploaded", "artifact.verified"}


def test_a_hook_and_the_topic_both_hear_an_event(
    api: Api, app_name: str, receiver: Receiver, topic: tuple[Any, str], hook_consumer: None
) -> None:
    add_hook(api, receiver.url, app_name, events=["artifact.verified"])
    upload(api, app_name, random_bytes())
    deliver_pending_events()
    assert receiver.wait_for("artifact.verified")
