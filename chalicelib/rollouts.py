"""Drive a deployment record through the cluster: pending → rolling_out → succeeded | failed.

A release with a release command passes through ``releasing`` first: its command runs once,
as a Job from the release's artifact with its config, before anything of the rollout is
applied; the rollout starts on the Job's success, and its failure fails the release (the
previous one keeps serving). The control plane never waits for the Job: the control plane
runs in Lambda, so each read of the deployment (the CLI's wait loop, ``GET
/deployments/{id}``, the scheduled reconciler) looks at the Job once and moves on.

Every step may run twice, concurrently, or after a crash: each transition is a conditional
write (only its winner applies or creates anything), and cluster events are copied under
deterministic keys, so repeats change nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib import deployments, hooks, kube, manifests, pull_tokens, releases
from chalicelib.auth import Principal
from chalicelib.config_vault import ConfigVault
from chalicelib.contract import FINISHED, IN_FLIGHT, DeploymentStatus, HookEvent
from chalicelib.errors import Conflict, ServiceUnavailable
from chalicelib.manifests import JobPurpose, JobSpec, release_job_name
from chalicelib.observability import logger
from chalicelib.records import Application, Deployment, is_condition_failure, iso, utcnow
from chalicelib.settings import Settings


@dataclass(frozen=True)
class DataPlane:
    """Where workloads run: the cluster, what the pods need to reach us, and the vault that
    opens each release's config for its Secret."""

    cluster: kube.Cluster | None
    settings: Settings
    vault: ConfigVault

    def artifact_url(self, digest: str) -> str:
        base = (self.settings.public_api_url or "").rstrip("/")
        return f"{base}/artifacts/{digest}/download"


def is_live(plane: DataPlane, deployment: Deployment) -> bool:
    """Whether the cluster still runs ``deployment``, fully rolled out."""
    if plane.cluster is None:
        return False
    try:
        rollout = plane.cluster.rollout(deployment.app_name, deployment.deployment_id)
    except Exception as exc:
        if kube.is_unavailable(exc):
            return False  # a new deployment is recorded and waits for the cluster
        raise
    return rollout.phase == kube.RolloutPhase.SUCCEEDED


def advance(plane: DataPlane, deployment: Deployment) -> Deployment:
    """Move ``deployment`` as far as the cluster allows now; returns the fresh record."""
    if deployment.status in FINISHED:
        return deployment
    if plane.cluster is None:
        _note_waiting(deployment, "no cluster is configured; the deployment waits for one")
        return deployment
    try:
        if deployment.status == DeploymentStatus.PENDING:
            _start(plane, plane.cluster, deployment)
        elif deployment.status == DeploymentStatus.RELEASING:
            _follow_release(plane, plane.cluster, deployment)
        elif deployment.status == DeploymentStatus.ROLLING_OUT:
            wrote = _follow(plane.cluster, deployment)
            if not wrote:
                # Still rolling out and untouched here: the record as the caller read it
                # stands (each poll of a rollout is one read of it, not two).
                return deployment
    except Exception as exc:
        if not kube.is_unavailable(exc):
            raise
        logger.warning("kubernetes unavailable", exc_info=True)
        _note_waiting(deployment, "the cluster is unreachable; retrying later")
        raise ServiceUnavailable(
            "the Kubernetes API is unreachable; the deployment is kept and will be retried"
        ) from exc
    deployment.refresh(consistent_read=True)
    return deployment


def advance_all_in_flight(plane: DataPlane) -> int:
    """The schedule's work: advance every deployment not yet finished."""
    advanced = 0
    for deployment in Deployment.scan(Deployment.status.is_in(*IN_FLIGHT)):
        try:
            advance(plane, deployment)
            advanced += 1
        except ServiceUnavailable:
            break  # the cluster is down for everyone; the next run retries
    return advanced


def restore_lost_workloads(plane: DataPlane) -> int:
    """Give the cluster back each app's current deployment if it has lost its workload.

    The cluster is disposable; the records are not. When the cluster comes back empty (it
    restarted, or a new one was pointed at the same tables and bucket), every app whose
    current deployment (its last successful one) has no workload gets it applied again from
    the deployment's record: same artifact, configuration and deployment id, a new pull token.
    Apps with a rollout in flight are left to it, and a workload that exists is never touched.
    """
    cluster = plane.cluster
    if cluster is None:
        return 0
    restored = 0
    for app in Application.scan():
        current = _restorable(app)
        if current is None:
            continue
        try:
            if cluster.has_workload(app.name):
                continue
            _apply(plane, cluster, current)
        except pull_tokens.Busy:
            continue  # a rollout of the app is applying it right now
        except Exception as exc:
            if kube.is_unavailable(exc):
                break  # the cluster is down for everyone; the next run retries
            logger.exception("restoring a workload failed", extra={"app": app.name})
            continue
        _note(current, "restored", "the cluster had lost this workload; applied it again")
        restored += 1
    return restored


def _restorable(app: Application) -> Deployment | None:
    """The app's last successful deployment, unless a newer one is still in flight (or the
    app is being destroyed: its teardown removes the workload)."""
    if app.latest_deployment_id is None or app.destroying_since is not None:
        return None
    try:
        latest = Deployment.get(app.latest_deployment_id, consistent_read=True)
    except DoesNotExist:
        return None
    if latest.status in IN_FLIGHT:
        return None
    if latest.status == DeploymentStatus.SUCCEEDED:
        return latest
    earlier: Deployment
    for earlier in Deployment.by_app.query(app.name, scan_index_forward=False):
        if earlier.status == DeploymentStatus.SUCCEEDED:
            return earlier
    return None


def _start(plane: DataPlane, cluster: kube.Cluster, deployment: Deployment) -> None:
    """Claim the first step (only one caller wins ``pending → releasing | rolling_out``),
    then take it: create the release command's Job, or apply the workload."""
    if runs_release_command(deployment):
        _claimed(plane, cluster, deployment, DeploymentStatus.PENDING, DeploymentStatus.RELEASING)
    else:
        _claimed(plane, cluster, deployment, DeploymentStatus.PENDING, DeploymentStatus.ROLLING_OUT)


def runs_release_command(deployment: Deployment) -> bool:
    return bool(deployment.release_command) and not deployment.skips_release_command


def _claimed(
    plane: DataPlane,
    cluster: kube.Cluster,
    deployment: Deployment,
    source: DeploymentStatus,
    target: DeploymentStatus,
) -> None:
    """``source → target`` if this caller wins it, then what ``target`` starts with: the
    release command's Job (with the Secrets it reads) or the whole workload.

    A step that cannot be taken now hands the claim back (``target → source``), so a later
    read takes it again; a refusal for good fails the release, once.
    """
    if not _transition(deployment, source, target):
        return
    releasing = target == DeploymentStatus.RELEASING
    try:
        spec = _apply(plane, cluster, deployment, workload=not releasing)
        if releasing:
            cluster.create_job(manifests.job_manifest(_release_job(plane, spec, deployment)))
    except pull_tokens.Busy:
        # Another rollout of the app is writing its Secret: this one applies on a later read.
        _transition(deployment, target, source)
        _note_waiting(deployment, "waiting for another rollout of the app to apply")
        return
    except Exception as exc:
        if kube.is_unavailable(exc):
            _transition(deployment, target, source)
            raise
        # Refused for good (bad configuration, RBAC, missing namespace): say why, once.
        logger.exception("workload refused")
        finish(
            deployment,
            DeploymentStatus.FAILED,
            f"the cluster refused the workload: {_refusal(exc)}",
            source=target,
        )
        return
    if releasing:
        _note(deployment, target, f"running the release command: {deployment.release_command}")
    else:
        deployment.update(actions=[Deployment.applied_at.set(utcnow())])
        after = "the release command succeeded; " if source == DeploymentStatus.RELEASING else ""
        _note(deployment, target, f"{after}applied Deployment {spec.app_name} ({spec.app_image})")


def _follow_release(plane: DataPlane, cluster: kube.Cluster, deployment: Deployment) -> None:
    """Look at the release command's Job once: still running, failed (so is the release), or
    succeeded (the rollout starts, if this is still the app's latest release)."""
    job = cluster.job(release_job_name(deployment.deployment_id))
    if job is None:
        reason = "the release command's Job is gone from the cluster"
        finish(deployment, DeploymentStatus.FAILED, reason, source=DeploymentStatus.RELEASING)
    elif job.phase == kube.JobPhase.FAILED:
        reason = f"the release command failed: {job.message}"
        finish(deployment, DeploymentStatus.FAILED, reason, source=DeploymentStatus.RELEASING)
    elif job.phase == kube.JobPhase.SUCCEEDED:
        if not _is_latest(deployment):
            # A newer release may have rolled out meanwhile: this one must not replace it.
            reason = "superseded by a newer release while its release command ran"
            finish(deployment, DeploymentStatus.FAILED, reason, source=DeploymentStatus.RELEASING)
            return
        _claimed(
            plane, cluster, deployment, DeploymentStatus.RELEASING, DeploymentStatus.ROLLING_OUT
        )


def _is_latest(deployment: Deployment) -> bool:
    app = Application.get(deployment.app_name, consistent_read=True)
    return app.latest_deployment_id == deployment.deployment_id


def _release_job(plane: DataPlane, spec: manifests.WorkloadSpec, deployment: Deployment) -> JobSpec:
    return JobSpec(
        release=spec,
        purpose=JobPurpose.RELEASE,
        command=("sh", "-c", deployment.release_command or ""),
        deadline_seconds=plane.settings.release_timeout_seconds,
        ttl_seconds=plane.settings.job_ttl_seconds,
        created_by=deployment.created_by,
        version=int(deployment.version) if deployment.version is not None else None,
    )


def _apply(
    plane: DataPlane, cluster: kube.Cluster, deployment: Deployment, *, workload: bool = True
) -> manifests.WorkloadSpec:
    """Apply the deployment's workload with a new pull token, which then replaces the app's;
    with ``workload=False``, only its Secrets (what its release command's Job reads).

    The Secret goes first, on its own: a token whose Secret write failed is revoked; once it
    is in the Secret it is the app's, whatever becomes of the Deployment.
    """
    spec = workload_spec(plane, cluster, deployment)
    pull = pull_tokens.replace(
        deployment.app_name,
        lambda secret: cluster.apply(manifests.workload_manifests(spec, secret)[:1]),
    )
    rest = manifests.workload_manifests(spec, pull.secret)[1:]
    cluster.apply(rest if workload else [m for m in rest if m["kind"] == "Secret"])
    return spec


def workload_spec(
    plane: DataPlane, cluster: kube.Cluster, deployment: Deployment
) -> manifests.WorkloadSpec:
    env = releases.config_of(plane.vault, deployment)
    return manifests.WorkloadSpec(
        app_name=deployment.app_name,
        deployment_id=deployment.deployment_id,
        digest=deployment.artifact_digest,
        node_major=int(deployment.runtime.removeprefix("node")),
        platform=deployment.platform,
        start_command=deployment.start_command,
        env=env,
        replicas=int(deployment.replicas),
        restarted_at=iso(deployment.restarted_at),
        namespace=cluster.namespace,
        artifact_url=plane.artifact_url(deployment.artifact_digest),
        artifact_kind=deployment.artifact_kind,
        fetcher_image=plane.settings.fetcher_image,
        progress_deadline_seconds=plane.settings.progress_deadline_seconds,
        layer_cache_dir=plane.settings.layer_cache_dir,
        layer_cache_max_bytes=plane.settings.layer_cache_max_bytes,
    )


def rotate_pull_tokens(plane: DataPlane) -> int:
    """Replace each running app's pull token once it has lived half its lifetime.

    Only the Secret changes: running pods read it when they start, so they keep serving, and
    the ones started from now on fetch with the new token.
    """
    cluster = plane.cluster
    if cluster is None:
        return 0
    rotated = 0
    for app in Application.scan():
        current = _restorable(app)
        if current is None or not pull_tokens.needs_rotation(app):
            continue
        spec = workload_spec(plane, cluster, current)
        try:
            pull_tokens.replace(
                app.name,
                lambda secret, spec=spec: cluster.apply(  # type: ignore[misc]
                    manifests.workload_manifests(spec, secret)[:1]
                ),
            )
        except pull_tokens.Busy:
            continue  # a rollout is replacing it right now
        except Exception as exc:
            if kube.is_unavailable(exc):
                break  # the cluster is down for everyone; the next run retries
            logger.exception("rotating a pull token failed", extra={"app": app.name})
            continue
        rotated += 1
    return rotated


def restart(plane: DataPlane, principal: Principal, app: Application) -> Deployment:
    """New pods for the app's current release, one by one as a rollout replaces them.

    The release goes back to ``rolling_out`` (from ``succeeded`` only, a conditional write)
    and follows the cluster to its end as any rollout does; its version does not change.
    """
    current = releases.latest(app)
    if current is None or current.status != DeploymentStatus.SUCCEEDED:
        state = "no release" if current is None else f"release {current.status}"
        raise Conflict(f"{app.name} has {state}; only a release that succeeded restarts")
    cluster = plane.cluster
    if cluster is None:
        raise ServiceUnavailable("no cluster is configured")
    now = utcnow()
    if not _transition(
        current,
        DeploymentStatus.SUCCEEDED,
        DeploymentStatus.ROLLING_OUT,
        # Unapplied again: a reader must not take the pods from before it for its rollout.
        [Deployment.restarted_at.set(now), Deployment.applied_at.remove()],
    ):
        raise Conflict(f"{app.name}'s release changed meanwhile; retry")
    current.refresh(consistent_read=True)
    try:
        _apply(plane, cluster, current)
    except Exception as exc:
        # Back to what it was: the pods were never touched.
        _transition(
            current,
            DeploymentStatus.ROLLING_OUT,
            DeploymentStatus.SUCCEEDED,
            [Deployment.applied_at.set(now)],
        )
        if kube.is_unavailable(exc):
            raise ServiceUnavailable("the Kubernetes API is unreachable; retry") from exc
        raise
    current.update(actions=[Deployment.applied_at.set(utcnow())])
    _note(current, "restart", f"restart asked by {principal.subject}: replacing every pod")
    current.refresh(consistent_read=True)
    return current


def _refusal(exc: Exception) -> str:
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        try:
            detail = json.loads(exc.body or "{}").get("message") or exc.reason
        except ValueError:
            detail = exc.reason
        return f"{exc.status} {detail}"
    return str(exc)


# How long a claimer may take to apply what it claimed before a reader takes the claim over.
APPLY_GRACE = timedelta(minutes=2)


def _follow(cluster: kube.Cluster, deployment: Deployment) -> bool:
    """Copy the cluster's new events and finish the rollout when the cluster has; True when
    this wrote (or tried to write) the record, which the caller then reads again."""
    if deployment.applied_at is None:
        # Claimed (``pending → rolling_out``, or a restart) but not applied yet: the claimer
        # is applying it now, or died doing so. Until then the cluster runs the previous
        # release (or nothing, or this release's pods from before its restart), which says
        # nothing about this one. After the grace the claim goes back to ``pending``
        # (conditional: still unapplied), and the next read applies it again.
        if utcnow() - deployment.updated_at <= APPLY_GRACE:
            return False
        _transition(
            deployment,
            DeploymentStatus.ROLLING_OUT,
            DeploymentStatus.PENDING,
            condition=Deployment.applied_at.does_not_exist(),
        )
        return True
    rollout = cluster.rollout(deployment.app_name, deployment.deployment_id)
    # Event timestamps have whole seconds: compare at that precision, or the
    # events of the deployment's first second would be lost.
    since = deployment.created_at.replace(microsecond=0)
    deployments.record_reported(
        deployment.deployment_id,
        [
            _reported(event)
            for event in cluster.events(deployment.app_name)
            if event.timestamp >= since
        ],
    )
    if rollout.phase == kube.RolloutPhase.SUCCEEDED:
        url = cluster.service_url(deployment.app_name)
        # Older releases' pods are gone: so may their config.
        cluster.prune_config_secrets(deployment.app_name, deployment.deployment_id)
        finish(deployment, DeploymentStatus.SUCCEEDED, rollout.message, url=url)
        return True
    if rollout.phase in (kube.RolloutPhase.FAILED, kube.RolloutPhase.SUPERSEDED):
        finish(deployment, DeploymentStatus.FAILED, rollout.message)
        return True
    return False


def finish(
    deployment: Deployment,
    status: DeploymentStatus,
    reason: str,
    url: str | None = None,
    *,
    source: DeploymentStatus = DeploymentStatus.ROLLING_OUT,
) -> None:
    """``source → status`` (succeeded or failed) with its reason, and free the app's slot."""
    actions: list[Any] = [Deployment.reason.set(reason)]
    if url is not None:
        actions.append(Deployment.url.set(url))
    if _transition(deployment, source, status, actions):
        _note(deployment, status, reason)
        deployments.release_slot(deployment.app_name, deployment.deployment_id)
        hooks.emit(
            HookEvent.DEPLOYMENT_SUCCEEDED
            if status == DeploymentStatus.SUCCEEDED
            else HookEvent.DEPLOYMENT_FAILED,
            deployment.app_name,
            digest=deployment.artifact_digest,
            version=None if deployment.version is None else int(deployment.version),
            deployment_id=deployment.deployment_id,
            reason=None if status == DeploymentStatus.SUCCEEDED else reason,
        )


def _transition(
    deployment: Deployment,
    source: DeploymentStatus,
    target: DeploymentStatus,
    actions: list[Any] | None = None,
    condition: Any = None,
) -> bool:
    """``source → target`` if the record is still in ``source`` (and meets ``condition``);
    False if someone else moved it."""
    expected = Deployment.status == source
    try:
        deployment.update(
            actions=[
                Deployment.status.set(target),
                Deployment.updated_at.set(utcnow()),
                *(actions or []),
            ],
            condition=expected if condition is None else expected & condition,
        )
    except UpdateError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def _note(deployment: Deployment, phase: str, message: str) -> None:
    deployments.record_event(deployment.deployment_id, phase, message)


def _note_waiting(deployment: Deployment, message: str) -> None:
    """Why the deployment does not move: said once per state, not once per read or retry.

    Filed at the deployment's creation, since retries move ``updated_at`` every time.
    """
    deployments.record_event(
        deployment.deployment_id,
        deployment.status,
        message,
        at=deployment.created_at,
        once="wait-" + _short_hash(f"{deployment.status}/{message}"),
    )


def _reported(event: kube.ClusterEvent) -> deployments.ReportedEvent:
    identity = f"{event.object_kind}/{event.object_name}/{event.reason}/{event.message}"
    return deployments.ReportedEvent(
        phase=f"k8s:{event.reason}" if event.reason else "k8s",
        message=f"{event.object_kind} {event.object_name}: {event.message}",
        at=event.timestamp,
        identity="k8s-" + _short_hash(identity),
    )


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]
