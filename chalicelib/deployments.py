"""Deployment records (each a release, see ``releases``): creation from a deploy, reads,
history, events."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib import apps, payloads, previews, releases
from chalicelib.auth import Principal
from chalicelib.config_vault import ConfigVault
from chalicelib.contract import (
    DEFAULT_REPLICAS,
    DEFAULT_START_COMMAND,
    MAX_REPLICAS,
    MIN_SCALE,
)
from chalicelib.errors import BadRequest, NotFound
from chalicelib.records import (
    Application,
    Deployment,
    DeploymentEvent,
    event_key,
    is_condition_failure,
    iso,
    new_id,
    newest_first,
    utcnow,
)


def create(
    principal: Principal, context: releases.Context, body: dict[str, Any]
) -> tuple[Deployment, bool]:
    """``POST /deployments``: a release of a verified artifact; returns it and whether it is new.

    What the body sets (``env`` values, ``start_command``, ``release_command``, ``replicas``)
    is set for this and later releases; what it leaves out is the latest release's. ``defaults`` (the project's
    own: its aether.toml, its detected start command) fill what was never set. Deploying
    exactly what runs returns that release instead of a new rollout.
    """
    app = apps.load(principal, payloads.app_name(payloads.required(body, "app_name")))
    digest = payloads.digest(payloads.required(body, "artifact_digest"))
    artifact = releases.deployable_artifact(app, digest, context.store)
    env = payloads.environment(payloads.optional(body, "env"))
    start_command = payloads.string(body, "start_command")
    release_command = payloads.release_command(body, "release_command")
    replicas = payloads.optional(body, "replicas")
    defaults = _defaults(payloads.optional(body, "defaults"))
    runtime = payloads.runtime(payloads.optional(body, "runtime"), artifact.runtime)
    asked_replicas = (
        None if replicas is None else payloads.integer(replicas, "replicas", 1, MAX_REPLICAS)
    )

    def build(previous: Deployment | None) -> releases.Wanted:
        wanted = _merged(
            context.vault,
            # A preview's first release starts from its base's, config and all.
            previous if previous is not None else previews.first_config_from(app),
            env=env,
            start_command=start_command,
            release_command=release_command,
            replicas=asked_replicas,
            defaults=defaults,
        )
        return replace(
            wanted,
            digest=digest,
            runtime=runtime,
            description=f"deploy {digest[:7]}",
            checked_artifact=artifact,
        )

    return releases.cut(principal, context, app, build)


@dataclass(frozen=True)
class _Defaults:
    env: dict[str, str]
    start_command: str | None
    release_command: str | None
    replicas: int | None


def _defaults(value: Any) -> _Defaults:
    if value is None:
        return _Defaults({}, None, None, None)
    if not isinstance(value, dict):
        raise BadRequest(
            "defaults must be an object (env, start_command, release_command, replicas)"
        )
    unknown = sorted(set(value) - {"env", "start_command", "release_command", "replicas"})
    if unknown:
        raise BadRequest(f"defaults: unknown field {unknown[0]}")
    replicas = payloads.optional(value, "replicas")
    return _Defaults(
        env=payloads.environment(payloads.optional(value, "env")),
        start_command=payloads.string(value, "start_command"),
        release_command=payloads.release_command(value, "release_command"),
        replicas=None
        if replicas is None
        else payloads.integer(replicas, "defaults.replicas", MIN_SCALE, MAX_REPLICAS),
    )


def _merged(
    vault: ConfigVault,
    previous: Deployment | None,
    *,
    env: dict[str, str],
    start_command: str | None,
    release_command: str | None,
    replicas: int | None,
    defaults: _Defaults,
) -> releases.Wanted:
    """What was set persists; the project's defaults fill the rest; the body's values win."""
    if previous is None:
        kept: dict[str, str] = {}
        old = releases.Wanted(
            digest="",
            runtime="",
            start_command=defaults.start_command or DEFAULT_START_COMMAND,
            start_command_set=False,
            env={},
            replicas=defaults.replicas if defaults.replicas is not None else DEFAULT_REPLICAS,
            description="",
        )
    else:
        old = releases.wanted_from(vault, previous, "")
        kept = {k: v for k, v in old.env.items() if k not in old.default_env_names}
    from_defaults = {k: v for k, v in defaults.env.items() if k not in kept and k not in env}
    command_set = start_command is not None or old.start_command_set
    if start_command is None and not old.start_command_set:
        start_command = defaults.start_command or old.start_command
    release_set = release_command is not None or old.release_command_set
    if release_command is None:
        release_command = (
            old.release_command if old.release_command_set else defaults.release_command or ""
        )
    replicas_set = replicas is not None or old.replicas_set
    if replicas is None:
        replicas = (
            defaults.replicas
            if defaults.replicas is not None and not old.replicas_set
            else old.replicas
        )
    return replace(
        old,
        env={**from_defaults, **kept, **env},
        default_env_names=frozenset(from_defaults),
        start_command=start_command or old.start_command,
        start_command_set=command_set,
        replicas=replicas,
        replicas_set=replicas_set,
        release_command=release_command,
        release_command_set=release_set,
    )


def rollback(
    principal: Principal, context: releases.Context, app_name: str, body: dict[str, Any]
) -> tuple[Deployment, bool]:
    """``POST /apps/{app}/rollback``: see ``releases.rollback``."""
    return releases.rollback(principal, context, app_name, body)


def release_slot(app_name: str, deployment_id: str | None) -> None:
    releases.release_slot(app_name, deployment_id)


def load(principal: Principal, deployment_id: str) -> Deployment:
    try:
        # Consistent: a status poll answers with this read unless the rollout moves it.
        deployment = Deployment.get(deployment_id, consistent_read=True)
    except DoesNotExist:
        raise NotFound(f"deployment {deployment_id} not found") from None
    try:
        apps.load(principal, deployment.app_name)
    except NotFound:
        raise NotFound(f"deployment {deployment_id} not found") from None
    return deployment


def history(
    principal: Principal, app_name: str, limit: int, cursor: str | None, cursor_key: bytes
) -> tuple[list[Deployment], str | None]:
    """One page of the app's deployments, newest first, and the cursor of the next page.

    A cursor is the page's last key, signed with ``cursor_key`` for this app: only one this
    API handed out for the same app is read, so no made-up key ever reaches DynamoDB.
    """
    app = apps.load(principal, app_name)
    start = _decode_cursor(cursor, app.name, cursor_key) if cursor is not None else None
    items, last_key = newest_first(Deployment.by_app, app.name, limit, start)
    return items, _encode_cursor(last_key, app.name, cursor_key) if last_key else None


def latest_json(app: Application) -> dict[str, Any] | None:
    if app.latest_deployment_id is None:
        return None
    try:
        return deployment_json(Deployment.get(app.latest_deployment_id))
    except DoesNotExist:
        return None


# What a page's last key holds in the by_app index: the table's key and the index's.
_CURSOR_FIELDS = frozenset({"deployment_id", "app_name", "created_at"})


def _cursor_mac(app_name: str, payload: bytes, cursor_key: bytes) -> bytes:
    return hmac.new(cursor_key, app_name.encode() + b"\n" + payload, hashlib.sha256).digest()


def _encode_cursor(last_key: dict[str, Any], app_name: str, cursor_key: bytes) -> str:
    payload = json.dumps(last_key, sort_keys=True, separators=(",", ":")).encode()
    mac = _cursor_mac(app_name, payload, cursor_key)
    return f"{_b64(payload)}.{_b64(mac)}"


def _decode_cursor(cursor: str, app_name: str, cursor_key: bytes) -> dict[str, Any]:
    refused = BadRequest("cursor is not one this API returned")
    encoded, _, encoded_mac = cursor.partition(".")
    try:
        payload, mac = _unb64(encoded), _unb64(encoded_mac)
    except (binascii.Error, ValueError) as exc:
        raise refused from exc
    if not hmac.compare_digest(mac, _cursor_mac(app_name, payload, cursor_key)):
        raise refused
    try:
        decoded = json.loads(payload)
    except ValueError as exc:  # signed with a key that is not secret (AETHER_CURSOR_SECRET unset)
        raise refused from exc
    if not isinstance(decoded, dict) or set(decoded) != _CURSOR_FIELDS:
        raise refused
    if any(not isinstance(v, dict) or not isinstance(v.get("S"), str) for v in decoded.values()):
        raise refused
    if decoded["app_name"]["S"] != app_name:
        raise refused
    return decoded


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def record_event(
    deployment_id: str,
    phase: str,
    message: str,
    *,
    at: datetime | None = None,
    once: str | None = None,
) -> None:
    """Add an event to the deployment's history.

    With ``once``, the event of that identity at that moment is written at most
    once, however many reads, schedules and reconcilers report it.
    """
    moment = at or utcnow()
    event = DeploymentEvent(
        deployment_id,
        event_key(moment, once or new_id()[:8]),
        phase=phase,
        message=message,
        timestamp=moment,
    )
    if once is None:
        event.save()
        return
    try:
        event.save(condition=DeploymentEvent.event_key.does_not_exist())
    except PutError as exc:
        if not is_condition_failure(exc):
            raise


@dataclass(frozen=True)
class ReportedEvent:
    """An event another system reported (the cluster's), with the identity it has there."""

    phase: str
    message: str
    at: datetime
    identity: str  # the same event, however often reported, has the same identity


def record_reported(deployment_id: str, reported: Iterable[ReportedEvent]) -> None:
    """Add the reported events not in the history yet, in one batch write after one query.

    A batch write has no conditions, and needs none: an event's key is made of its moment
    and identity, and its phase and message come from the same report, so two readers
    copying the same event at once write the same item twice.
    """
    wanted = {event_key(event.at, event.identity): event for event in reported}
    missing = sorted(set(wanted) - event_keys(deployment_id)) if wanted else []
    if not missing:
        return
    with DeploymentEvent.batch_write() as batch:
        for key in missing:
            event = wanted[key]
            batch.save(
                DeploymentEvent(
                    deployment_id,
                    key,
                    phase=event.phase,
                    message=event.message,
                    timestamp=event.at,
                )
            )


def event_keys(deployment_id: str) -> set[str]:
    """The keys of the deployment's history, in one query."""
    return {
        event.event_key
        for event in DeploymentEvent.query(deployment_id, attributes_to_get=["event_key"])
    }


def events(deployment_id: str) -> list[DeploymentEvent]:
    return list(DeploymentEvent.query(deployment_id, scan_index_forward=True))


def release_json(release: Deployment, kept_digests: frozenset[str]) -> dict[str, Any]:
    """A release as the releases list shows it: whether it can still be rolled back to."""
    return {
        **deployment_json(release),
        "rollback_available": release.artifact_digest in kept_digests,
    }


def deployment_json(deployment: Deployment, with_events: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "deployment_id": deployment.deployment_id,
        "app_name": deployment.app_name,
        "artifact_digest": deployment.artifact_digest,
        "status": deployment.status,
        "reason": deployment.reason,
        "runtime": deployment.runtime,
        "platform": deployment.platform,
        "start_command": deployment.start_command,
        "env_names": deployment.config_names(),
        "replicas": deployment.replicas,
        "created_by": deployment.created_by,
        "created_at": iso(deployment.created_at),
        "updated_at": iso(deployment.updated_at),
        "url": deployment.url,
        "rollback_of": deployment.rollback_of,
        "version": int(deployment.version) if deployment.version is not None else None,
        "description": deployment.description,
        "restarted_at": iso(deployment.restarted_at),
        "release_command": deployment.release_command,
    }
    if with_events:
        body["events"] = [
            {"phase": e.phase, "message": e.message, "timestamp": iso(e.timestamp)}
            for e in events(deployment.deployment_id)
        ]
    return body
