"""Event hooks: subscriptions, the targets they may name, and events put on the hooks' queue.

A subscription is an app's (its owner's or an admin's) or global (admins: every app's
events). It holds a URL, the event names it wants (none: all) and a signing secret, shown
once when it is created and kept sealed under the config key (``ConfigVault.seal_secret``).

Emitting an event never waits for a receiver: the request (or the upload handler) finds the
subscriptions that want it and puts one message per subscription on the SQS queue, and that
is all; ``hook_delivery`` is the queue's consumer. An event is emitted after the conditional
write that made it true, so each transition is announced once; an event whose enqueue fails
(the queue unreachable) is logged and counted, and the request goes on.

The queue is given to this module once, by ``configure`` (as the records' tables are), since
events are emitted from deep inside the state machines (verification, releases, rollouts,
teardown).
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pynamodb.exceptions import DeleteError, DoesNotExist

from chalicelib import apps, payloads
from chalicelib.auth import Principal, require_human
from chalicelib.config_vault import ConfigVault
from chalicelib.contract import (
    HOOK_DELIVERY_DAYS,
    HOOK_SECRET_PREFIX,
    MAX_HOOK_URL_LENGTH,
    MAX_HOOKS_PER_SCOPE,
    HookEvent,
)
from chalicelib.errors import BadRequest, Conflict, Forbidden, NotFound
from chalicelib.observability import MetricUnit, logger, metrics
from chalicelib.records import (
    GLOBAL_SCOPE,
    Hook,
    HookDelivery,
    is_condition_failure,
    iso,
    new_id,
    utcnow,
)
from chalicelib.settings import HookSettings

# How a refused target's message starts (what no schema can say: which hosts are public).
TARGET_REFUSED = "url is not a hook target"
# SendMessageBatch takes at most ten messages.
_BATCH = 10


class Queue:
    """The hooks' SQS queue, by name (its URL is looked up once); ``publishes``: every event
    also goes to the SNS topic, through the queue."""

    def __init__(self, sqs: Any, name: str, publishes: bool = False) -> None:
        self._sqs = sqs
        self.name = name
        self.publishes = publishes
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = str(self._sqs.get_queue_url(QueueName=self.name)["QueueUrl"])
        return self._url

    def send(self, messages: list[dict[str, Any]], delay_seconds: int = 0) -> None:
        """Put ``messages`` on the queue; any that SQS did not take is an error."""
        for start in range(0, len(messages), _BATCH):
            entries = [
                {
                    "Id": str(index),
                    "MessageBody": json.dumps(message, separators=(",", ":")),
                    "DelaySeconds": delay_seconds,
                }
                for index, message in enumerate(messages[start : start + _BATCH])
            ]
            answer = self._sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
            failed = answer.get("Failed") or []
            if failed:
                raise RuntimeError(f"SQS refused {len(failed)} hook messages: {failed[0]}")


_queue: Callable[[], Queue] | None = None


def configure(queue: Callable[[], Queue]) -> None:
    """Where events go: ``queue`` builds the client on first use (most requests emit none)."""
    global _queue
    _queue = queue


# -- targets ---------------------------------------------------------------------------------


def target_problem(url: str, allow_loopback: bool) -> str | None:
    """Why ``url`` may not receive events, or None: an absolute https URL of a public host
    (plain http and loopback only when ``allow_loopback``, the embedded stack's setting).

    A name is checked again at every delivery, on the addresses it resolves to then.
    """
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in {"https", "http"} or not host:
        return "url must be an absolute https:// URL"
    if parts.username is not None or parts.password is not None:
        return "url must not carry credentials (the signature authenticates each delivery)"
    try:
        parts.port  # noqa: B018  (parsing it is the check)
    except ValueError:
        return "url has an invalid port"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    loopback = address.is_loopback if address is not None else _loopback_name(host)
    if parts.scheme == "http" and not (allow_loopback and loopback):
        return "url must be https:// (plain http only to loopback, on the embedded stack)"
    if address is not None:
        return address_problem(address, allow_loopback)
    if loopback and not allow_loopback:
        return f"url names {host}, a loopback host: events go to public hosts only"
    return None


def address_problem(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool
) -> str | None:
    """Why a delivery may not connect to ``address``: anything but a public unicast address
    (loopback too unless ``allow_loopback``) could reach the platform's own network."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return None if allow_loopback else f"{address} is a loopback address"
    if not address.is_global or address.is_multicast:
        return f"{address} is a private or reserved address"
    return None


def _loopback_name(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")


# -- subscriptions ---------------------------------------------------------------------------


def create(
    principal: Principal, vault: ConfigVault, settings: HookSettings, body: dict[str, Any]
) -> tuple[Hook, str]:
    """``POST /hooks``: a subscription and its secret (returned this once, stored sealed)."""
    require_human(principal)
    url = payloads.string(body, "url")
    if url is None:
        raise BadRequest("url is required")
    if len(url) > MAX_HOOK_URL_LENGTH:
        raise BadRequest(f"url is longer than {MAX_HOOK_URL_LENGTH} characters")
    problem = target_problem(url, settings.allow_loopback)
    if problem is not None:
        raise BadRequest(f"{TARGET_REFUSED}: {problem}")
    events = _event_names(payloads.optional(body, "events"))
    app_name = payloads.optional(body, "app_name")
    if app_name is None:
        if not principal.is_admin:
            raise Forbidden("only admins subscribe to every app's events; name an app_name")
        scope = GLOBAL_SCOPE
    else:
        scope = apps.load(principal, payloads.app_name(app_name)).name
    if Hook.by_scope.count(scope) >= MAX_HOOKS_PER_SCOPE:
        raise Conflict(f"at most {MAX_HOOKS_PER_SCOPE} subscriptions per app (and globally)")
    secret = HOOK_SECRET_PREFIX + secrets.token_urlsafe(32)
    hook_id = new_id()
    hook = Hook(
        hook_id,
        scope=scope,
        url=url,
        events=events,
        secret_sealed=vault.seal_secret(hook_id, secret),
        created_by=principal.subject,
    )
    hook.save(condition=Hook.hook_id.does_not_exist())
    return hook, secret


def _event_names(value: Any) -> set[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise BadRequest("events must be a non-empty list of event names")
    known = {str(event) for event in HookEvent}
    unknown = sorted(set(value) - known)
    if unknown:
        raise BadRequest(f"unknown event {unknown[0]!r}; events are {', '.join(sorted(known))}")
    return set(value)


def list_for(principal: Principal, app_name: str | None) -> list[Hook]:
    """``GET /hooks``: one app's subscriptions, or every one the token may see."""
    require_human(principal)
    if app_name is not None:
        scopes = [apps.authorized(principal, payloads.app_name(app_name)).name]
    elif principal.is_admin:
        return sorted(Hook.scan(), key=lambda hook: (hook.scope, hook.created_at))
    else:
        scopes = [app.name for app in apps.visible_to(principal)]
    return [hook for scope in scopes for hook in Hook.by_scope.query(scope)]


def load(principal: Principal, hook_id: str) -> Hook:
    """The subscription if the token may act on it; else 404, as for a missing one."""
    require_human(principal)
    payloads.issued_id(hook_id, "hook id")
    missing = NotFound(f"hook {hook_id} not found")
    try:
        hook = Hook.get(hook_id)
    except DoesNotExist:
        raise missing from None
    if hook.scope == GLOBAL_SCOPE:
        if not principal.is_admin:
            raise missing
        return hook
    try:
        apps.authorized(principal, hook.scope)
    except NotFound:
        raise missing from None
    return hook


def remove(principal: Principal, hook_id: str) -> Hook:
    """``DELETE /hooks/{id}``: no event is queued for it from now on; deliveries already
    queued are dropped when their turn comes."""
    hook = load(principal, hook_id)
    try:
        hook.delete(condition=Hook.hook_id.exists())
    except DeleteError as exc:
        if not is_condition_failure(exc):
            raise  # a condition failure: removed meanwhile, which is what was asked
    return hook


def deliveries(principal: Principal, hook_id: str, limit: int) -> list[HookDelivery]:
    """``GET /hooks/{id}/deliveries``: the newest deliveries, each with its attempts."""
    hook = load(principal, hook_id)
    return list(HookDelivery.query(hook.hook_id, scan_index_forward=False, limit=limit))


def hook_json(hook: Hook) -> dict[str, Any]:
    """A subscription as the API shows it: never its secret."""
    return {
        "hook_id": hook.hook_id,
        "app_name": None if hook.scope == GLOBAL_SCOPE else hook.scope,
        "url": hook.url,
        "events": sorted(hook.events) if hook.events else None,
        "created_by": hook.created_by,
        "created_at": iso(hook.created_at),
    }


def delivery_json(delivery: HookDelivery) -> dict[str, Any]:
    return {
        "event_id": delivery.event_id,
        "event": delivery.event,
        "status": delivery.status,
        "attempts": [
            {
                "at": iso(attempt.at),
                "status_code": None if attempt.status_code is None else int(attempt.status_code),
                "latency_ms": int(attempt.latency_ms),
                "error": attempt.error,
            }
            for attempt in delivery.attempts or []
        ],
    }


# -- events ----------------------------------------------------------------------------------


def event_payload(
    event: HookEvent,
    app_name: str,
    *,
    digest: str | None = None,
    version: int | None = None,
    deployment_id: str | None = None,
    reason: str | None = None,
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """What a receiver gets: names, ids and times, never a secret or a config value."""
    return {
        "id": new_id(),
        "type": str(event),
        "occurred_at": iso(occurred_at or utcnow()),
        "app": app_name,
        "digest": digest,
        "release": None if version is None else f"v{version}",
        "deployment_id": deployment_id,
        "reason": reason,
    }


def wants(hook: Hook, event: str) -> bool:
    return not hook.events or event in hook.events


def subscribers(app_name: str, event: str) -> list[Hook]:
    """The app's subscriptions and the global ones that want ``event``."""
    own = [hook for hook in Hook.by_scope.query(app_name) if wants(hook, event)]
    return [*own, *subscribers_global(event)]


def subscribers_global(event: str) -> list[Hook]:
    return [hook for hook in Hook.by_scope.query(GLOBAL_SCOPE) if wants(hook, event)]


def emit(
    event: HookEvent,
    app_name: str,
    *,
    digest: str | None = None,
    version: int | None = None,
    deployment_id: str | None = None,
    reason: str | None = None,
) -> None:
    """Queue ``event`` for every subscription that wants it (and the SNS topic, if set)."""
    payload = event_payload(
        event,
        app_name,
        digest=digest,
        version=version,
        deployment_id=deployment_id,
        reason=reason,
    )
    _enqueue(payload, lambda: subscribers(app_name, str(event)), snapshot=False)


def app_destroyed(app_name: str) -> int:
    """Teardown's step: queue ``app.destroyed``, then delete the app's subscriptions (a new
    app of the same name must not inherit them). Their deliveries carry the subscription
    with them, since it is gone by the time they are made. Returns how many were deleted."""
    payload = event_payload(HookEvent.APP_DESTROYED, app_name)
    own = list(Hook.by_scope.query(app_name))
    targets = [hook for hook in own if wants(hook, payload["type"])]
    _enqueue(
        payload,
        lambda: [*targets, *subscribers_global(payload["type"])],
        snapshot=True,
    )
    for hook in own:
        hook.delete()
    return len(own)


def _enqueue(payload: dict[str, Any], targets: Callable[[], list[Hook]], snapshot: bool) -> None:
    messages: list[dict[str, Any]] = []
    try:
        if _queue is None:
            raise RuntimeError("hooks.configure(...) must run before an event is emitted")
        queue = _queue()  # cached: the client is built once, and asks SQS nothing yet
        messages = [
            delivery_message(hook, payload, snapshot=snapshot and hook.scope != GLOBAL_SCOPE)
            for hook in targets()
        ]
        if queue.publishes:
            messages.append({"publish": payload})
        if messages:
            queue.send(messages)
    except Exception:
        # The transition stands whatever becomes of its announcement.
        logger.exception("hook event not queued", extra={"event": payload["type"]})
        metrics.add_metric("hook_events_lost", MetricUnit.Count, 1)
        return
    if messages:
        metrics.add_metric("hook_events_queued", MetricUnit.Count, len(messages))


def delivery_message(
    hook: Hook, payload: dict[str, Any], *, snapshot: bool = False, attempt: int = 1
) -> dict[str, Any]:
    """One delivery on the queue: the subscription, the event, when it was first queued."""
    message: dict[str, Any] = {
        "hook_id": hook.hook_id,
        "event": payload,
        "queued_at": time.time(),
        "attempt": attempt,
    }
    if snapshot:
        message["snapshot"] = {"url": hook.url, "secret_sealed": hook.secret_sealed}
    return message


def delivery_key(queued_at: float, event_id: str) -> str:
    """Sorts a subscription's deliveries by when they were queued (fixed precision)."""
    return f"{datetime.fromtimestamp(queued_at, UTC):%Y-%m-%dT%H:%M:%S.%fZ}#{event_id}"


def delivery_expiry() -> datetime:
    return utcnow() + timedelta(days=HOOK_DELIVERY_DAYS)
