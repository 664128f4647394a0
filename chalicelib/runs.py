"""One-off runs: a command run once in a new pod of the release that serves the app.

A run is a Kubernetes Job (``manifests.job_manifest``) from that release's artifact, with its
config, in the same hardened pod as the app's, stopped at its time limit. The cluster is the
only record of a run: the Job, its pod and their logs are kept ``job_ttl_seconds`` after it
finished, and listing an app's runs lists the Jobs the cluster keeps. Nothing here waits:
the client polls the run and its logs, and deletes it to stop it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from chalicelib import apps, kube, logs, payloads
from chalicelib.auth import Principal
from chalicelib.contract import RUN_ID_PATTERN, DeploymentStatus
from chalicelib.errors import BadRequest, Conflict, NotFound, ServiceUnavailable
from chalicelib.manifests import (
    CREATED_BY_ANNOTATION,
    RUN_ID_LABEL,
    VERSION_ANNOTATION,
    JobPurpose,
    JobSpec,
    job_manifest,
    run_job_name,
)
from chalicelib.records import Application, Deployment, iso
from chalicelib.rollouts import DataPlane, workload_spec

T = TypeVar("T")
_RUN_ID = re.compile(RUN_ID_PATTERN)


def start(
    principal: Principal, plane: DataPlane, app_name: str, body: dict[str, Any]
) -> dict[str, Any]:
    """``POST /apps/{app}/runs``: create the run's Job; it starts as soon as the cluster
    schedules it."""
    app = apps.load(principal, app_name)
    command = payloads.run_command(payloads.required(body, "command"))
    settings = plane.settings
    asked = payloads.optional(body, "timeout_seconds")
    timeout = (
        settings.run_timeout_seconds
        if asked is None
        else payloads.integer(asked, "timeout_seconds", 1, settings.max_run_timeout_seconds)
    )
    release = serving(app)
    cluster = _cluster(plane)
    run_id = secrets.token_hex(6)
    job = JobSpec(
        release=workload_spec(plane, cluster, release),
        purpose=JobPurpose.RUN,
        command=command,
        deadline_seconds=timeout,
        ttl_seconds=settings.job_ttl_seconds,
        created_by=principal.subject,
        version=int(release.version) if release.version is not None else None,
        run_id=run_id,
    )
    _unavailable_is_503(lambda: cluster.create_job(job_manifest(job)))
    return show(principal, plane, app.name, run_id)


def serving(app: Application) -> Deployment:
    """The app's newest release that succeeded: what serves it, whose Secrets exist."""
    found: Deployment
    for found in Deployment.by_app.query(app.name, scan_index_forward=False):
        if found.status == DeploymentStatus.SUCCEEDED:
            return found
    raise Conflict(f"{app.name} has no release that serves; deploy it first")


def show(principal: Principal, plane: DataPlane, app_name: str, run_id: str) -> dict[str, Any]:
    """``GET /apps/{app}/runs/{run_id}``: where the run stands, its exit code once it exited."""
    return run_json(_find(principal, plane, app_name, run_id))


def recent(principal: Principal, plane: DataPlane, app_name: str) -> dict[str, Any]:
    """``GET /apps/{app}/runs``: the runs the cluster still keeps, newest first."""
    app = apps.load(principal, app_name)
    cluster = _cluster(plane)
    found = _unavailable_is_503(lambda: cluster.jobs(app.name, JobPurpose.RUN))
    return {"runs": [run_json(state) for state in found]}


def stop(principal: Principal, plane: DataPlane, app_name: str, run_id: str) -> dict[str, Any]:
    """``DELETE /apps/{app}/runs/{run_id}``: delete the Job, which stops its command."""
    state = _find(principal, plane, app_name, run_id)
    cluster = _cluster(plane)
    _unavailable_is_503(lambda: cluster.delete_job(state.name))
    return {**run_json(state), "stopped": True}


def output(
    principal: Principal,
    plane: DataPlane,
    app_name: str,
    run_id: str,
    *,
    since: str | None,
    tail: str | None,
) -> dict[str, Any]:
    """``GET /apps/{app}/runs/{run_id}/logs``: the run's output, paged as the app's logs are;
    once the run has finished, every line it wrote is in the answer."""
    state = _find(principal, plane, app_name, run_id)
    cluster = _cluster(plane)
    return _unavailable_is_503(
        lambda: logs.job_output(cluster, app_name, state.name, since=since, tail=tail)
    )


def run_json(state: kube.JobState) -> dict[str, Any]:
    version = state.annotations.get(VERSION_ANNOTATION)
    return {
        "run_id": state.labels.get(RUN_ID_LABEL),
        "app_name": state.labels.get("app_name"),
        "status": str(state.phase),
        "exit_code": state.exit_code,
        "reason": state.message or None,
        "command": list(state.command),
        "version": int(version) if version and version.isdigit() else None,
        "created_by": state.annotations.get(CREATED_BY_ANNOTATION),
        "created_at": iso(state.created_at),
        "finished_at": iso(state.finished_at),
    }


def _find(principal: Principal, plane: DataPlane, app_name: str, run_id: str) -> kube.JobState:
    app = apps.load(principal, app_name)
    if not _RUN_ID.fullmatch(run_id):
        raise BadRequest("run_id must be the 12 hex characters of a run's id")
    cluster = _cluster(plane)
    state = _unavailable_is_503(lambda: cluster.job(run_job_name(run_id)))
    if state is None or state.labels.get("app_name") != app.name:
        raise NotFound(f"run {run_id} not found for {app.name}")
    return state


def _cluster(plane: DataPlane) -> kube.Cluster:
    if plane.cluster is None:
        raise ServiceUnavailable("no cluster is configured for this control plane")
    return plane.cluster


def _unavailable_is_503(call: Callable[[], T]) -> T:
    try:
        return call()
    except Exception as exc:
        if kube.is_unavailable(exc):
            raise ServiceUnavailable("the Kubernetes API is unreachable; retry") from exc
        raise
