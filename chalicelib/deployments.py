"""Deployment records: creation (idempotent while in flight), reads, history."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError

from chalicelib import apps, artifacts, payloads, verification
from chalicelib.auth import Principal
from chalicelib.contract import (
    DEFAULT_REPLICAS,
    DEFAULT_START_COMMAND,
    IN_FLIGHT,
    MAX_REPLICAS,
    DeploymentStatus,
)
from chalicelib.errors import (
    ArtifactNotVerified,
    BadRequest,
    Conflict,
    NotFound,
    UnsupportedPlatform,
)
from chalicelib.records import (
    Application,
    Artifact,
    Deployment,
    DeploymentEvent,
    event_key,
    is_condition_failure,
    iso,
    new_id,
    newest_first,
    transaction,
    utcnow,
)
from chalicelib.storage import ArtifactStore


def create(
    principal: Principal,
    store: ArtifactStore,
    cluster_platforms: tuple[str, ...],
    body: dict[str, Any],
    is_live: Callable[[Deployment], bool],
    rollback_of: str | None = None,
) -> tuple[Deployment, bool]:
    """``POST /deployments``; returns the deployment and whether it is new.

    ``cluster_platforms`` are the platforms the cluster's nodes run; ``is_live``
    says whether a finished deployment still runs in the cluster: deploying
    exactly what runs returns that deployment instead of a new rollout.
    """
    app = apps.load(principal, payloads.app_name(payloads.required(body, "app_name")))
    digest = payloads.digest(payloads.required(body, "artifact_digest"))
    artifact = _deployable_artifact(app, digest, store)
    if artifact.platform not in cluster_platforms:
        raise UnsupportedPlatform(
            f"artifact {digest[:12]}… targets {artifact.platform}; "
            f"this cluster runs {', '.join(cluster_platforms)}"
        )
    deployment = Deployment(
        new_id(),
        app_name=app.name,
        artifact_digest=digest,
        artifact_kind=artifact.kind,
        runtime=payloads.runtime(payloads.optional(body, "runtime"), artifact.runtime),
        platform=artifact.platform,
        start_command=payloads.string(body, "start_command", DEFAULT_START_COMMAND),
        env=payloads.environment(payloads.optional(body, "env")),
        replicas=payloads.integer(
            payloads.optional(body, "replicas", DEFAULT_REPLICAS), "replicas", 1, MAX_REPLICAS
        ),
        created_by=principal.subject,
        rollback_of=rollback_of,
    )
    deployment.config_key = _config_key(deployment)
    running = _already_running(app, deployment.config_key, is_live)
    if running is not None:
        return running, False  # this exact deployment already runs: nothing to roll out
    return _claim_in_flight_slot(app, deployment)


def _already_running(
    app: Application, config_key: str, is_live: Callable[[Deployment], bool]
) -> Deployment | None:
    """The app's current deployment if it has this configuration and still runs."""
    if app.latest_deployment_id is None:
        return None
    try:
        current = Deployment.get(app.latest_deployment_id, consistent_read=True)
    except DoesNotExist:
        return None
    if current.status != DeploymentStatus.SUCCEEDED or current.config_key != config_key:
        return None
    return current if is_live(current) else None


def rollback(
    principal: Principal,
    store: ArtifactStore,
    cluster_platforms: tuple[str, ...],
    app_name: str,
    body: dict[str, Any],
    is_live: Callable[[Deployment], bool],
) -> tuple[Deployment, bool]:
    """``POST /apps/{app}/rollback``: redeploy an earlier verified artifact, no upload.

    Without ``to``, the target is the newest succeeded deployment whose artifact
    differs from the latest deployment's.
    """
    app = apps.load(principal, app_name)
    target_id = payloads.string(body, "to")
    current = Deployment.get(app.latest_deployment_id) if app.latest_deployment_id else None
    target = _rollback_target(app.name, target_id, current)
    return create(
        principal,
        store,
        cluster_platforms,
        {
            "app_name": app.name,
            "artifact_digest": target.artifact_digest,
            "runtime": target.runtime,
            "start_command": target.start_command,
            "env": target.env_dict(),
            "replicas": target.replicas,
        },
        is_live,
        rollback_of=target.deployment_id,
    )


def _rollback_target(
    app_name: str, target_id: str | None, current: Deployment | None
) -> Deployment:
    if target_id is not None:
        try:
            target = Deployment.get(target_id)
        except DoesNotExist:
            raise NotFound(f"deployment {target_id} not found") from None
        if target.app_name != app_name:
            raise NotFound(f"deployment {target_id} not found for {app_name}")
        return target
    earlier: Deployment
    for earlier in Deployment.by_app.query(app_name, scan_index_forward=False):
        if earlier.status == DeploymentStatus.SUCCEEDED and (
            current is None or earlier.artifact_digest != current.artifact_digest
        ):
            return earlier
    raise Conflict(f"{app_name} has no earlier successful deployment to roll back to")


def _deployable_artifact(app: Application, digest: str, store: ArtifactStore) -> Artifact:
    try:
        artifact = Artifact.get(digest, app.name, consistent_read=True)
    except DoesNotExist:
        raise NotFound(f"artifact {digest} not found for {app.name}; upload it first") from None
    detail = artifacts.undeployable_because(artifact, store)
    if detail is not None:
        raise ArtifactNotVerified(f"artifact {digest} is not verified ({detail})")
    distrusted = verification.signature_problem(artifact)
    if distrusted is not None:
        raise ArtifactNotVerified(f"artifact {digest} may not run: {distrusted}")
    return artifact


def _config_key(deployment: Deployment) -> str:
    config = {
        "digest": deployment.artifact_digest,
        "runtime": deployment.runtime,
        "start_command": deployment.start_command,
        "env": deployment.env_dict(),
        "replicas": deployment.replicas,
    }
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def _claim_in_flight_slot(app: Application, deployment: Deployment) -> tuple[Deployment, bool]:
    """Write the deployment unless the same one is already in flight.

    The application's ``inflight_config_key`` is the lock: the record and the
    claim are written in one transaction, conditioned on the slot not holding
    the same configuration.
    """
    for _ in range(3):
        try:
            with transaction() as write:
                write.save(deployment, condition=Deployment.deployment_id.does_not_exist())
                write.update(
                    app,
                    actions=[
                        Application.inflight_config_key.set(deployment.config_key),
                        Application.inflight_deployment_id.set(deployment.deployment_id),
                        Application.latest_deployment_id.set(deployment.deployment_id),
                    ],
                    condition=Application.inflight_config_key.does_not_exist()
                    | (Application.inflight_config_key != deployment.config_key),
                )
            return deployment, True
        except TransactWriteError as exc:
            if not is_condition_failure(exc):
                raise
        holder = _slot_holder(app.name)
        if holder is not None and holder.status in IN_FLIGHT:
            return holder, False
        release_slot(app.name, holder.deployment_id if holder else None)
    raise Conflict("the deployment slot kept changing while recording this deployment; retry")


def _slot_holder(app_name: str) -> Deployment | None:
    app = Application.get(app_name, consistent_read=True)
    if app.inflight_deployment_id is None:
        return None
    try:
        return Deployment.get(app.inflight_deployment_id, consistent_read=True)
    except DoesNotExist:
        return None


def release_slot(app_name: str, deployment_id: str | None) -> None:
    """Free the in-flight slot if ``deployment_id`` still holds it."""
    from pynamodb.exceptions import UpdateError

    try:
        Application(app_name).update(
            actions=[
                Application.inflight_config_key.remove(),
                Application.inflight_deployment_id.remove(),
            ],
            condition=(Application.inflight_deployment_id == deployment_id)
            if deployment_id
            else Application.inflight_deployment_id.does_not_exist(),
        )
    except UpdateError as exc:
        if not is_condition_failure(exc):
            raise


def load(principal: Principal, deployment_id: str) -> Deployment:
    try:
        deployment = Deployment.get(deployment_id)
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


def events(deployment_id: str) -> list[DeploymentEvent]:
    return list(DeploymentEvent.query(deployment_id, scan_index_forward=True))


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
        "env_names": sorted(deployment.env_dict()),
        "replicas": deployment.replicas,
        "created_by": deployment.created_by,
        "created_at": iso(deployment.created_at),
        "updated_at": iso(deployment.updated_at),
        "url": deployment.url,
        "rollback_of": deployment.rollback_of,
    }
    if with_events:
        body["events"] = [
            {"phase": e.phase, "message": e.message, "timestamp": iso(e.timestamp)}
            for e in events(deployment.deployment_id)
        ]
    return body
