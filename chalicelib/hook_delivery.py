"""The hooks' queue consumer: each message is one POST of one event to one subscription.

The body is the event as compact JSON with sorted keys; the headers say what it is
(``X-Aether-Event``, ``X-Aether-Delivery``: the event's id) and sign it:
``X-Aether-Timestamp`` (Unix seconds) and ``X-Aether-Signature`` = ``sha256=`` + the hex
HMAC-SHA256, keyed with the subscription's secret, of ``timestamp + "." + body``. A receiver
refuses a timestamp older than ``HOOK_SIGNATURE_TOLERANCE_SECONDS`` (a replay).

A POST waits ``timeout_seconds`` at most, connects only to the public addresses its host
resolves to (loopback too on the embedded stack) and follows no redirect. Anything but a 2xx
answer is retried: queued again ``backoff * 2^(n-1)`` seconds later (SQS's delay, at most
15 minutes) until ``retry_seconds`` after the event was first queued; then the delivery is
``failed``. Every attempt is kept on the delivery's record (status code, latency, time).

SQS may hand a message out twice, and a consumer may die mid-attempt: each attempt number is
claimed on the delivery record first, by a conditional write with a lease, so one copy POSTs
and the other is dropped, while a claim whose consumer died is taken over once its lease ran
out (SQS shows the message again only after its visibility timeout, longer than the lease).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib import hooks
from chalicelib.config_vault import ConfigVault
from chalicelib.contract import HOOK_SIGNATURE_PREFIX, DeliveryStatus
from chalicelib.observability import MetricUnit, logger, metrics
from chalicelib.records import Hook, HookAttempt, HookDelivery, is_condition_failure, utcnow
from chalicelib.settings import HookSettings

USER_AGENT = "Aether-Hooks/1"
# SQS delays a message by at most 15 minutes.
MAX_DELAY_SECONDS = 900
# How much of an answer is read: only its status matters.
_ANSWER_BYTES = 1024


class Topic:
    """The SNS topic every event is also published to."""

    def __init__(self, sns: Any, arn: str) -> None:
        self._sns = sns
        self.arn = arn

    def publish(self, payload: dict[str, Any]) -> None:
        self._sns.publish(
            TopicArn=self.arn,
            Message=body_of(payload).decode(),
            MessageAttributes={"event": {"DataType": "String", "StringValue": payload["type"]}},
        )


@dataclass(frozen=True)
class Courier:
    """What delivering needs: the queue (retries go back on it), the vault that opens
    secrets, the settings, and the topic when one is configured."""

    queue: hooks.Queue
    vault: ConfigVault
    settings: HookSettings
    topic: Topic | None = None


@dataclass(frozen=True)
class Answer:
    """What one POST got: the status (None: no answer), how long it took, what went wrong."""

    status_code: int | None
    latency_ms: int
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class TargetRefused(Exception):
    """The target's host resolves to an address events may not go to."""


def handle_sqs_event(courier: Courier, event: dict[str, Any]) -> list[str]:
    """The ``on_sqs_message`` handler's work: the batch's messages at once, so that a slow
    receiver does not hold up the others. An error (the retry could not be queued) fails the
    batch, which SQS hands out again: what was delivered is then dropped by its claim."""
    bodies = [record.get("body", "") for record in event.get("Records", [])]
    if not bodies:
        return []
    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        futures = [pool.submit(deliver_body, courier, body) for body in bodies]
    failures = [future.exception() for future in futures if future.exception() is not None]
    if failures:
        raise failures[0]  # type: ignore[misc]
    return [future.result() for future in futures]


def deliver_body(courier: Courier, body: str) -> str:
    try:
        message = json.loads(body)
        if not isinstance(message, dict):
            raise TypeError("not an object")
    except (ValueError, TypeError):
        logger.warning("hook message is not a JSON object; dropped")
        return "malformed"
    if "publish" in message:
        if courier.topic is None:
            return "unpublished"  # the topic was unset since it was queued
        courier.topic.publish(message["publish"])
        return "published"
    return deliver(courier, message)


def deliver(courier: Courier, message: dict[str, Any]) -> str:
    """One attempt of one delivery; returns what became of it."""
    hook_id = str(message["hook_id"])
    payload: dict[str, Any] = message["event"]
    attempt = int(message["attempt"])
    queued_at = float(message["queued_at"])
    target = _target(hook_id, message.get("snapshot"))
    if target is None:
        logger.info("hook removed; delivery dropped", extra={"hook_id": hook_id})
        return "removed"
    url, sealed = target
    record = HookDelivery(hook_id, hooks.delivery_key(queued_at, payload["id"]))
    if not _claim(record, payload, attempt, courier.settings):
        return "duplicate"
    secret = courier.vault.open_secret(hook_id, sealed)
    answer = post(url, payload, secret, hook_id, courier.settings)
    delay = min(courier.settings.backoff_seconds * 2 ** (attempt - 1), MAX_DELAY_SECONDS)
    if answer.delivered:
        status = DeliveryStatus.DELIVERED
    elif time.time() + delay > queued_at + courier.settings.retry_seconds:
        status = DeliveryStatus.FAILED
    else:
        status = DeliveryStatus.PENDING
    if not _record(record, attempt, answer, status):
        return "duplicate"
    _count(status)
    if status == DeliveryStatus.PENDING:
        courier.queue.send([{**message, "attempt": attempt + 1}], delay_seconds=delay)
        return "retrying"
    if status == DeliveryStatus.FAILED:
        logger.warning(
            "hook delivery failed for good",
            extra={"hook_id": hook_id, "attempts": attempt, "error": answer.error},
        )
    return str(status)


def _target(hook_id: str, snapshot: Any) -> tuple[str, str] | None:
    """Where to POST and the sealed secret: the subscription's, or the copy a delivery
    carries when its subscription was deleted with its app."""
    if isinstance(snapshot, dict):
        return str(snapshot["url"]), str(snapshot["secret_sealed"])
    try:
        hook = Hook.get(hook_id)
    except DoesNotExist:
        return None
    return hook.url, hook.secret_sealed


def _claim(
    record: HookDelivery, payload: dict[str, Any], attempt: int, settings: HookSettings
) -> bool:
    """Take attempt ``attempt`` of a pending delivery (creating its record on the first);
    False when another consumer holds it or has made it, or the delivery is settled."""
    now = utcnow()
    lease = timedelta(seconds=2 * settings.timeout_seconds + 30)
    try:
        record.update(
            actions=[
                HookDelivery.event_id.set(payload["id"]),
                HookDelivery.event.set(payload["type"]),
                HookDelivery.status.set(DeliveryStatus.PENDING),
                HookDelivery.attempt_count.set(attempt),
                HookDelivery.lease_until.set(now + lease),
                HookDelivery.expires_at.set(hooks.delivery_expiry()),
            ],
            condition=(
                HookDelivery.status.does_not_exist()
                | (HookDelivery.status == DeliveryStatus.PENDING)
            )
            & (
                HookDelivery.attempt_count.does_not_exist()
                | (HookDelivery.attempt_count < attempt)
                | ((HookDelivery.attempt_count == attempt) & (HookDelivery.lease_until < now))
            ),
        )
    except UpdateError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def _record(record: HookDelivery, attempt: int, answer: Answer, status: DeliveryStatus) -> bool:
    """Add the attempt and move the delivery to ``status``, if this attempt is still the
    delivery's (a consumer that took it over after the lease has the last word)."""
    # pynamodb gives MapAttribute an untyped __init__.
    made = HookAttempt(  # type: ignore[no-untyped-call]
        at=utcnow(),
        status_code=answer.status_code,
        latency_ms=answer.latency_ms,
        error=answer.error,
    )
    try:
        record.update(
            actions=[
                HookDelivery.attempts.set((HookDelivery.attempts | []).append([made])),
                HookDelivery.status.set(status),
                HookDelivery.lease_until.remove(),
            ],
            condition=(HookDelivery.status == DeliveryStatus.PENDING)
            & (HookDelivery.attempt_count == attempt),
        )
    except UpdateError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def _count(status: DeliveryStatus) -> None:
    name = {
        DeliveryStatus.DELIVERED: "hook_deliveries_delivered",
        DeliveryStatus.FAILED: "hook_deliveries_failed",
        DeliveryStatus.PENDING: "hook_delivery_retries",
    }[status]
    metrics.add_metric(name, MetricUnit.Count, 1)


# -- the POST --------------------------------------------------------------------------------


def body_of(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return HOOK_SIGNATURE_PREFIX + mac.hexdigest()


def signed_headers(payload: dict[str, Any], secret: str, hook_id: str) -> dict[str, str]:
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Aether-Event": payload["type"],
        "X-Aether-Delivery": payload["id"],
        "X-Aether-Hook": hook_id,
        "X-Aether-Timestamp": str(timestamp),
        "X-Aether-Signature": signature(secret, timestamp, body_of(payload)),
    }


def post(
    url: str, payload: dict[str, Any], secret: str, hook_id: str, settings: HookSettings
) -> Answer:
    """One signed POST of ``payload`` to ``url``; never raises for the receiver's sake."""
    import urllib3

    started = time.monotonic()
    status: int | None = None
    error: str | None = None
    try:
        status = _post(url, body_of(payload), signed_headers(payload, secret, hook_id), settings)
        if not 200 <= status < 300:
            error = f"answered HTTP {status}"
    except TargetRefused as exc:
        error = str(exc)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        error = _describe(exc, settings)
    return Answer(status, round((time.monotonic() - started) * 1000), error)


def _post(url: str, body: bytes, headers: dict[str, str], settings: HookSettings) -> int:
    """POST to an address checked now: a name that resolved to a public address when the
    subscription was made may resolve to a private one since."""
    import certifi
    import urllib3

    parts = urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    address = _checked_address(host, port, settings.allow_loopback)
    timeout = urllib3.Timeout(total=settings.timeout_seconds)
    pool: urllib3.HTTPConnectionPool
    if secure:
        # Connected to the address checked, the certificate checked against the name.
        pool = urllib3.HTTPSConnectionPool(
            address,
            port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            server_hostname=host,
            assert_hostname=host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False, maxsize=1)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    with pool:
        response = pool.urlopen(
            "POST",
            path,
            body=body,
            headers={**headers, "Host": parts.netloc},
            redirect=False,
            assert_same_host=False,
            preload_content=False,
        )
        try:
            response.read(_ANSWER_BYTES)
        finally:
            response.release_conn()
        return int(response.status)


def _checked_address(host: str, port: int, allow_loopback: bool) -> str:
    """The first address ``host`` resolves to, if every one of them is allowed."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [ipaddress.ip_address(info[4][0]) for info in found]
    for address in addresses:
        problem = hooks.address_problem(address, allow_loopback)
        if problem is not None:
            raise TargetRefused(f"{host} resolves to an address events may not go to: {problem}")
    if not addresses:
        raise TargetRefused(f"{host} resolves to no address")
    return str(addresses[0])


def _describe(exc: BaseException, settings: HookSettings) -> str:
    import urllib3

    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError | socket.timeout):
        return f"no answer within {settings.timeout_seconds} s"
    if isinstance(exc, socket.gaierror):
        return "the host name does not resolve"
    text = str(exc) or type(exc).__name__
    return text[:200]
