"""Releases: what an app runs, numbered per app (v1, v2, ...), one deployment record each.

A release is an artifact digest with its config (values sealed by ``config_vault``), start
command, release command, replicas and runtime, and a one-line description of what changed.
Every change (a deploy, a config patch, a scale, a rollback, a promotion) is a new release cut
from the app's latest one, so what was set persists until it is changed again; each is rolled
out as a deploy is.

The version comes from the application's ``release_count``, bumped in the same transaction
that writes the release and claims the in-flight slot, conditioned on the count read: two
releases cut at once never share a number, and the loser reads the count again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError

from chalicelib import apps, artifacts, hooks, payloads, retention, verification
from chalicelib.auth import Principal
from chalicelib.config_vault import ConfigVault
from chalicelib.contract import (
    DEFAULT_REPLICAS,
    IN_FLIGHT,
    MAX_CONFIG_BYTES,
    MAX_CONFIG_VARS,
    MAX_REPLICAS,
    MIN_SCALE,
    DeploymentStatus,
    HookEvent,
    SignatureState,
)
from chalicelib.errors import (
    ArtifactNotVerified,
    BadRequest,
    Conflict,
    NotFound,
    NotRetained,
    PayloadTooLarge,
    UnsupportedPlatform,
)
from chalicelib.records import (
    Application,
    Artifact,
    Deployment,
    is_condition_failure,
    new_id,
    transaction,
)
from chalicelib.settings import DEFAULT_RETAINED_RELEASES
from chalicelib.storage import ArtifactStore

IsLive = Callable[[Deployment], bool]

# A release is cut in one transaction; under contention each attempt reads the count again.
_CLAIM_ATTEMPTS = 6


@dataclass(frozen=True)
class Wanted:
    """What a new release runs; ``env`` holds the values in the clear, never stored so."""

    digest: str
    runtime: str
    start_command: str
    start_command_set: bool
    env: Mapping[str, str]
    replicas: int
    description: str
    rollback_of: str | None = None
    # The names whose values came from the project's defaults, and whether the replicas
    # were set (else a deploy's defaults replace them).
    default_env_names: frozenset[str] = frozenset()
    replicas_set: bool = False
    # Run once before the rollout ("": none); whether it was set (else a deploy's default
    # replaces it), and whether this release skips it (a scale changes nothing it needs).
    release_command: str = ""
    release_command_set: bool = False
    skips_release_command: bool = False
    # The record of ``digest``, when this request has just found it deployable: recording
    # the release does not read and check it all again.
    checked_artifact: Artifact | None = None


# What a change makes of the app's latest release (None before its first).
Build = Callable[[Deployment | None], Wanted]


@dataclass(frozen=True)
class Context:
    """What cutting a release needs besides the request: storage, KMS, the cluster's
    platforms, whether a release still runs, and how many releases can be rolled back to."""

    store: ArtifactStore
    vault: ConfigVault
    cluster_platforms: tuple[str, ...]
    is_live: IsLive
    retained_releases: int = DEFAULT_RETAINED_RELEASES


def latest(app: Application) -> Deployment | None:
    """The app's newest release, whatever its status: the one its config is read from."""
    if app.latest_deployment_id is None:
        return None
    try:
        return Deployment.get(app.latest_deployment_id, consistent_read=True)
    except DoesNotExist:
        return None


def config_of(vault: ConfigVault, release: Deployment) -> dict[str, str]:
    """A release's config values, in the clear (for the cluster, the owner, a new release)."""
    if release.config_sealed:
        return vault.open(release.app_name, release.config_sealed)
    return release.legacy_env()


def wanted_from(vault: ConfigVault, release: Deployment, description: str) -> Wanted:
    """The same as ``release``, to be changed with ``dataclasses.replace``."""
    return Wanted(
        digest=release.artifact_digest,
        runtime=release.runtime,
        start_command=release.start_command,
        start_command_set=bool(release.start_command_set),
        env=config_of(vault, release),
        replicas=int(release.replicas),
        description=description,
        default_env_names=frozenset(release.default_env_names or ()),
        replicas_set=bool(release.replicas_set),
        release_command=release.release_command or "",
        release_command_set=bool(release.release_command_set),
    )


def cut(
    principal: Principal, context: Context, app: Application, build: Build
) -> tuple[Deployment, bool]:
    """Record the app's next release; returns it and whether it is new.

    ``build`` makes what the release runs from the app's latest release. When another
    release is recorded meanwhile, the write fails on its condition and ``build`` runs again
    from that one: two changes at once both land, one after the other, and neither is lost.
    Exactly what runs already (or is in flight) is answered with that release: a client that
    retries, or sends the same change twice, makes one release.
    """
    for _ in range(_CLAIM_ATTEMPTS):
        fresh = Application.get(app.name, consistent_read=True)
        if fresh.destroying_since is not None:
            raise Conflict(f"application {app.name} is being destroyed")
        current = latest(fresh)
        release = _record(principal, context, fresh, build(current))
        running = _already_running(current, release.config_key, context.is_live)
        if running is not None:
            return running, False
        claimed = _claim(fresh, current, release)
        if claimed is not None:
            return claimed
    raise Conflict("the app's releases kept changing while recording this one; retry")


def _record(principal: Principal, context: Context, app: Application, wanted: Wanted) -> Deployment:
    checked = wanted.checked_artifact
    if checked is not None and checked.digest == wanted.digest and checked.app_name == app.name:
        artifact = checked
    else:
        artifact = deployable_artifact(app, wanted.digest, context.store)
    check_platform(artifact, context.cluster_platforms)
    check_config(wanted.env)
    release = Deployment(
        new_id(),
        app_name=app.name,
        artifact_digest=wanted.digest,
        artifact_kind=artifact.kind,
        runtime=wanted.runtime,
        platform=artifact.platform,
        start_command=wanted.start_command,
        start_command_set=wanted.start_command_set,
        env={},
        env_names=set(wanted.env) or None,
        default_env_names=set(wanted.default_env_names & set(wanted.env)) or None,
        config_sealed=context.vault.seal(app.name, wanted.env),
        replicas=wanted.replicas,
        replicas_set=wanted.replicas_set,
        created_by=principal.subject,
        rollback_of=wanted.rollback_of,
        description=wanted.description,
        release_command=wanted.release_command or None,
        release_command_set=wanted.release_command_set,
        skips_release_command=wanted.skips_release_command or None,
    )
    release.config_key = config_key(context.vault, app.name, wanted)
    return release


def config_key(vault: ConfigVault, app_name: str, wanted: Wanted) -> str:
    """What tells two releases apart: the same key means the same thing runs.

    Over values it is KMS's HMAC (no plain hash of a secret is ever stored); without
    values a plain hash says nothing secret.
    """
    config = {
        "digest": wanted.digest,
        "runtime": wanted.runtime,
        "start_command": wanted.start_command,
        "env": dict(wanted.env),
        "replicas": wanted.replicas,
    }
    if wanted.release_command:
        # Only when there is one: the keys of releases recorded before stay what they were.
        config["release_command"] = wanted.release_command
    if wanted.env:
        return vault.fingerprint(app_name, config)
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def check_platform(artifact: Artifact, cluster_platforms: tuple[str, ...]) -> None:
    if artifact.platform not in cluster_platforms:
        raise UnsupportedPlatform(
            f"artifact {artifact.digest[:12]}… targets {artifact.platform}; "
            f"this cluster runs {', '.join(cluster_platforms)}"
        )


def check_config(env: Mapping[str, str]) -> None:
    """The limits of a whole config (each value's own is checked where it is read)."""
    if len(env) > MAX_CONFIG_VARS:
        raise BadRequest(
            f"an app holds at most {MAX_CONFIG_VARS} config values; this has {len(env)}"
        )
    total = sum(len(name.encode()) + len(value.encode()) for name, value in env.items())
    if total > MAX_CONFIG_BYTES:
        raise PayloadTooLarge(
            f"an app's config holds at most {MAX_CONFIG_BYTES} bytes of names and values; "
            f"this would hold {total}"
        )


def deployable_artifact(app: Application, digest: str, store: ArtifactStore) -> Artifact:
    try:
        artifact = Artifact.get(digest, app.name, consistent_read=True)
    except DoesNotExist:
        raise NotFound(f"artifact {digest} not found for {app.name}; upload it first") from None
    detail = artifacts.undeployable_because(artifact, store)
    if detail is not None:
        raise ArtifactNotVerified(f"artifact {digest} is not verified ({detail})")
    # A promoted artifact was signed, if at all, by the app that uploaded it.
    vouching = artifacts.origin(artifact) or artifact
    distrusted = verification.signature_problem(vouching)
    if distrusted is not None:
        raise ArtifactNotVerified(f"artifact {digest} may not run: {distrusted}")
    if app.require_signature and vouching.signature_state != SignatureState.VALID:
        # Verification refuses an unsigned upload to such an app; a promotion brings bytes
        # another app verified under its own rule.
        raise ArtifactNotVerified(f"{app.name} requires signed artifacts; {digest} is unsigned")
    return artifact


def _already_running(current: Deployment | None, key: str, is_live: IsLive) -> Deployment | None:
    """The app's latest release if it has this configuration and still runs."""
    if current is None or current.status != DeploymentStatus.SUCCEEDED:
        return None
    if current.config_key != key:
        return None
    return current if is_live(current) else None


def _claim(
    app: Application, current: Deployment | None, release: Deployment
) -> tuple[Deployment, bool] | None:
    """Write the release with the next version, or None when the app changed meanwhile.

    One transaction writes the record and, on the application, the new count, the latest
    release and the in-flight slot: conditioned on the count and the latest release being
    the ones read, on the slot not holding this same configuration (then that release, in
    flight, is the answer), and on the app not being destroyed meanwhile (``teardown``).
    """
    counted = app.release_count
    version = (int(counted) if counted is not None else _recorded(app.name)) + 1
    release.version = version
    same_count = (
        Application.release_count == counted
        if counted is not None
        else Application.release_count.does_not_exist()
    )
    same_latest = (
        Application.latest_deployment_id == current.deployment_id
        if current is not None
        else Application.latest_deployment_id.does_not_exist()
    )
    slot_free = Application.inflight_config_key.does_not_exist() | (
        Application.inflight_config_key != release.config_key
    )
    try:
        with transaction() as write:
            write.save(release, condition=Deployment.deployment_id.does_not_exist())
            write.update(
                app,
                actions=[
                    Application.release_count.set(version),
                    Application.inflight_config_key.set(release.config_key),
                    Application.inflight_deployment_id.set(release.deployment_id),
                    Application.latest_deployment_id.set(release.deployment_id),
                ],
                condition=same_count
                & same_latest
                & slot_free
                & Application.destroying_since.does_not_exist(),
            )
        hooks.emit(
            HookEvent.RELEASE_CREATED,
            app.name,
            digest=release.artifact_digest,
            version=version,
            deployment_id=release.deployment_id,
        )
        return release, True
    except TransactWriteError as exc:
        if not is_condition_failure(exc):
            raise
    holder = _slot_holder(app.name)
    if holder is not None and holder.status in IN_FLIGHT:
        if holder.config_key == release.config_key:
            return holder, False
    elif app.inflight_config_key == release.config_key:
        release_slot(app.name, holder.deployment_id if holder else None)
    return None


def _recorded(app_name: str) -> int:
    """Deployments recorded before versions were counted: numbering continues after them."""
    return int(Deployment.by_app.count(app_name))


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


# -- the changes a release can make ----------------------------------------------------------


def _current(app: Application) -> Deployment:
    return _present(app, latest(app))


def _present(app: Application, current: Deployment | None) -> Deployment:
    if current is None:
        raise Conflict(f"{app.name} has no release yet; deploy it first")
    return current


def patch_config(
    principal: Principal, context: Context, app_name: str, body: dict[str, Any]
) -> tuple[Deployment, bool]:
    """``PATCH /apps/{app}/config``: a release of the current artifact with values set and
    unset; no upload, no build."""
    app = apps.load(principal, app_name)
    values = payloads.config_values(payloads.optional(body, "set"), "set")
    removed = payloads.config_names(payloads.optional(body, "unset"), "unset")
    if not values and not removed:
        raise BadRequest("nothing to change: give set (NAME: value) or unset (names)")
    _current(app)
    # After the app's state: no schema can say it, so an app with nothing to change answers
    # as for any patch.
    both = sorted(set(values) & set(removed))
    if both:
        raise BadRequest(f"{', '.join(both)} cannot be both set and unset")

    def build(current: Deployment | None) -> Wanted:
        wanted = wanted_from(context.vault, _present(app, current), describe_patch(values, removed))
        env = {**wanted.env, **values}
        for name in removed:
            env.pop(name, None)
        # A value set here is the app's own from now on, even if the project's defaults had one.
        defaults = wanted.default_env_names - set(values) - set(removed)
        return replace(wanted, env=env, default_env_names=defaults)

    return cut(principal, context, app, build)


def describe_patch(values: Mapping[str, str], removed: list[str]) -> str:
    said = []
    if values:
        said.append("set " + ", ".join(sorted(values)))
    if removed:
        said.append("unset " + ", ".join(sorted(removed)))
    return "; ".join(said)


def scale(
    principal: Principal, context: Context, app_name: str, body: dict[str, Any]
) -> tuple[Deployment, bool]:
    """``POST /apps/{app}/scale``: the current release with another number of replicas
    (0 stops serving and keeps everything else)."""
    app = apps.load(principal, app_name)
    replicas = payloads.integer(
        payloads.required(body, "replicas"), "replicas", MIN_SCALE, MAX_REPLICAS
    )
    _current(app)

    def build(current: Deployment | None) -> Wanted:
        wanted = wanted_from(context.vault, _present(app, current), f"scale to {replicas}")
        return replace(wanted, replicas=replicas, replicas_set=True, skips_release_command=True)

    return cut(principal, context, app, build)


def rollback(
    principal: Principal, context: Context, app_name: str, body: dict[str, Any]
) -> tuple[Deployment, bool]:
    """``POST /apps/{app}/rollback``: an earlier release's artifact, config and start command
    again (at today's replicas); nothing is uploaded.

    ``version`` or ``to`` (a deployment id) names it; without either, the newest succeeded
    release of another artifact than the latest's. Only a release whose artifact is kept
    (``retention``) can be rolled back to.
    """
    app = apps.load(principal, app_name)
    to = payloads.string(body, "to")
    version = payloads.optional(body, "version")
    if to is not None and version is not None:
        raise BadRequest("give version or to, not both")
    current = latest(app)
    if version is not None:
        target = by_version(app.name, payloads.release_version(version))
    else:
        target = _rollback_target(app.name, to, current)
    if target.artifact_digest not in retention.kept_digests(app.name, context.retained_releases):
        raise NotRetained(
            f"{release_name(target)} of {app.name} is older than the "
            f"{context.retained_releases} releases kept: its artifact is reclaimed; "
            "deploy it again instead"
        )
    wanted = wanted_from(context.vault, target, f"rollback to {release_name(target)}")
    wanted = replace(wanted, rollback_of=target.deployment_id)

    def build(now: Deployment | None) -> Wanted:
        if now is None:
            return wanted
        return replace(wanted, replicas=int(now.replicas), replicas_set=bool(now.replicas_set))

    return cut(principal, context, app, build)


def promote(
    principal: Principal, context: Context, app_name: str, body: dict[str, Any]
) -> tuple[Deployment, bool]:
    """``POST /apps/{app}/promote``: another app's verified artifact with this app's own
    config, start command and replicas; nothing is built or uploaded.

    ``from`` names the app, whose release that runs (its newest that succeeded) is promoted,
    or the one ``version`` names. The caller must be able to act on both apps. The artifact
    is granted to this app (``artifacts.grant``) before the release is cut, once it is known
    to be deployable here: verified where it was uploaded, trusted, for this cluster.
    """
    app = apps.load(principal, app_name)
    source_name = payloads.app_name(payloads.required(body, "from"), "from")
    version = payloads.optional(body, "version")
    asked = None if version is None else payloads.release_version(version)
    if source_name == app.name:
        raise BadRequest("an app is not promoted to itself: give another app as from")
    source = apps.load(principal, source_name)
    promoted = by_version(source.name, asked) if asked is not None else _serving(source)
    artifact = deployable_artifact(source, promoted.artifact_digest, context.store)
    check_platform(artifact, context.cluster_platforms)
    artifacts.grant(context.store, artifact, app.name, principal.subject)
    description = f"promote from {source.name} {release_name(promoted)}"

    def build(current: Deployment | None) -> Wanted:
        if current is None:
            return Wanted(
                digest=promoted.artifact_digest,
                runtime=promoted.runtime,
                start_command=promoted.start_command,
                start_command_set=False,
                env={},
                replicas=DEFAULT_REPLICAS,
                description=description,
                release_command=promoted.release_command or "",
            )
        wanted = wanted_from(context.vault, current, description)
        return replace(wanted, digest=promoted.artifact_digest, runtime=promoted.runtime)

    return cut(principal, context, app, build)


def _serving(app: Application) -> Deployment:
    """The release the app runs: its newest that succeeded."""
    release: Deployment
    for release in Deployment.by_app.query(app.name, scan_index_forward=False):
        if release.status == DeploymentStatus.SUCCEEDED:
            return release
    raise Conflict(f"{app.name} has no release that succeeded to promote; deploy it first")


def release_name(release: Deployment) -> str:
    """``v4``; a deployment recorded before versions by its id's first block."""
    if release.version is not None:
        return f"v{int(release.version)}"
    return release.deployment_id.split("-")[0]


def by_version(app_name: str, version: int) -> Deployment:
    found: Deployment
    for found in Deployment.by_app.query(app_name, filter_condition=Deployment.version == version):
        return found
    raise NotFound(f"release v{version} not found for {app_name}")


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


# -- reading config ----------------------------------------------------------------------------


def config_json(
    principal: Principal, vault: ConfigVault, app_name: str, with_values: bool = False
) -> dict[str, Any]:
    """``GET /apps/{app}/config``: the names of the current release's config; with
    ``with_values`` their values too. Only the app's owner and admins load the app at all,
    and a value is opened here only when asked: the listing answers without KMS."""
    app = apps.load(principal, app_name)
    current = latest(app)
    shown: dict[str, Any] = {
        "app_name": app.name,
        "version": _version(current),
        "names": current.config_names() if current else [],
    }
    if with_values:
        shown["values"] = config_of(vault, current) if current else {}
    return shown


def config_value(
    principal: Principal, vault: ConfigVault, app_name: str, name: str
) -> dict[str, Any]:
    """``GET /apps/{app}/config/{name}``: one value, for the app's owner or an admin."""
    app = apps.load(principal, app_name)
    payloads.config_name(name, "name")
    current = latest(app)
    values = config_of(vault, current) if current else {}
    if name not in values:
        raise NotFound(f"{app.name} has no config value {name}")
    return {"app_name": app.name, "version": _version(current), "name": name, "value": values[name]}


def _version(release: Deployment | None) -> int | None:
    return int(release.version) if release is not None and release.version is not None else None
