"""Previews: short-lived apps cut from a base app (``aether deploy --preview NAME``).

A preview is an application of its own (its name, URL, releases, pull token) that records its
base and when it expires. Its first release copies the base's config (``deployments.create``
reads ``first_config_from``); from then on it is an app like any other, whose config changes
are its own. The scheduled reconciler destroys every preview past its expiry through
``teardown.destroy``, the one way an app ends.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from chalicelib import apps, kube, payloads, releases, teardown
from chalicelib.auth import Principal, require_human
from chalicelib.errors import BadRequest, Conflict, NotFound
from chalicelib.observability import logger
from chalicelib.records import Application, Deployment, is_condition_failure, utcnow
from chalicelib.settings import Settings
from chalicelib.storage import ArtifactStore


def put(
    principal: Principal, settings: Settings, name: str, body: dict[str, Any]
) -> tuple[Application, bool]:
    """``PUT /apps/{name}/preview``: the preview, created (True) or its expiry moved (False).

    The expiry is ``ttl_seconds`` from now, at most ``AETHER_PREVIEW_MAX_TTL_SECONDS``. The
    caller must act on the base, and owns the preview; a name that is another kind of app,
    or a preview of another base, is a conflict.
    """
    require_human(principal)
    payloads.app_name(name, "app name")
    base_name = payloads.app_name(payloads.required(body, "base"), "base")
    ttl = payloads.integer(payloads.required(body, "ttl_seconds"), "ttl_seconds", 1)
    if ttl > settings.preview_max_ttl_seconds:
        raise BadRequest(
            f"a preview lives at most {settings.preview_max_ttl_seconds} seconds; "
            f"ttl_seconds is {ttl}"
        )
    if base_name == name:
        raise BadRequest("a preview needs a name of its own, not its base's")
    base = apps.load(principal, base_name)
    if base.preview_of is not None:
        raise BadRequest(f"{base.name} is itself a preview; preview its base {base.preview_of}")
    expires_at = utcnow() + timedelta(seconds=ttl)
    fresh = Application(
        name,
        owner=principal.subject,
        require_signature=base.require_signature,
        preview_of=base.name,
        expires_at=expires_at,
    )
    try:
        fresh.save(condition=Application.name.does_not_exist())
        return fresh, True
    except PutError as exc:
        if not is_condition_failure(exc):
            raise
    existing = apps.load(principal, name)
    if existing.preview_of != base.name:
        kind = "an app" if existing.preview_of is None else f"a preview of {existing.preview_of}"
        raise Conflict(f"{name} is {kind}, not a preview of {base.name}")
    try:
        # Not once its teardown has begun: an expired preview is not brought back.
        existing.update(
            actions=[Application.expires_at.set(expires_at)],
            condition=(Application.preview_of == base.name)
            & Application.destroying_since.does_not_exist(),
        )
    except UpdateError as exc:
        if not is_condition_failure(exc):
            raise
        raise Conflict(
            f"preview {name} is being destroyed; deploy it again once it is gone"
        ) from None
    return existing, False


def first_config_from(app: Application) -> Deployment | None:
    """What a preview's first release takes its config from: its base's latest release."""
    if app.preview_of is None:
        return None
    try:
        base = Application.get(app.preview_of, consistent_read=True)
    except DoesNotExist:
        return None
    return releases.latest(base)


def destroy_expired(
    cluster: kube.Cluster | None, store: ArtifactStore, now: datetime | None = None
) -> int:
    """The schedule's work: destroy every preview whose expiry has passed (at ``now``)."""
    moment = now or utcnow()
    destroyed = 0
    for app in Application.scan(Application.expires_at < moment):
        # Read again: a deploy may have moved the expiry since the scan.
        try:
            fresh = Application.get(app.name, consistent_read=True)
        except DoesNotExist:
            continue
        if fresh.expires_at is None or fresh.expires_at >= moment:
            continue
        try:
            teardown.destroy(cluster, store, app.name)
        except NotFound:
            continue  # destroyed meanwhile
        except Exception as exc:
            if kube.is_unavailable(exc):
                break  # the cluster is down for everyone; the next run retries
            logger.exception("destroying an expired preview failed", extra={"app": app.name})
            continue
        logger.info("expired preview destroyed", extra={"app": app.name})
        destroyed += 1
    return destroyed
