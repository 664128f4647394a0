"""The data plane's cluster client: a thin layer over the official client's ``ApiClient``.

``Cluster`` talks to one namespace: server-side apply of the manifests ``chalicelib.manifests``
builds, rollout state from the Deployment's status and its pods, Events, pod logs.

Errors from the cluster propagate as the client raises them (``ApiException``, urllib3
errors); ``is_unavailable`` tells the API layer which of them mean "Kubernetes is down" (503).
A 404 is turned into an answer only where "nothing there yet" is normal.

The control plane never creates namespaces: its Role is namespace-scoped
(``infra/k8s/rbac.yaml``), and the namespace comes from ``infra/k8s/namespace.yaml`` (applied by
an operator or ``infra/kind/up.sh``). Applying into a missing namespace is a 404 ApiException.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import kubernetes.client
import kubernetes.config
import urllib3.exceptions
from kubernetes.client import ApiClient, ApiException

from chalicelib.manifests import (
    APP_CONTAINER,
    FETCH_CONTAINER,
    JOB_APP_LABEL,
    JOB_CONTAINER,
    JOB_NAME_LABEL,
    JobPurpose,
    config_secrets_selector,
    jobs_selector,
    label_selector,
)

MANAGER = "aether"
_APPLY = "application/apply-patch+yaml"


# Waiting reasons that no amount of waiting fixes: fail the rollout at once.
_FATAL_WAITING = frozenset(
    {"InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError", "CreateContainerError"}
)
# Termination reasons that say the app can never become ready as it is (the embedded runtime
# stops an app that listens on other ports than the one it was given with "WrongPort").
_FATAL_TERMINATED = frozenset({"WrongPort"})
# The line a crash loop is summed up by: a JavaScript error ("TypeError: ...",
# "Error [ERR_MODULE_NOT_FOUND]: ..."), else any line that says error.
_JS_ERROR = re.compile(
    r"\s*(?:Uncaught\s+)?[A-Za-z_$][\w$.]*(?:Error|Exception)(?:\s*\[[^\]]*\])?:\s"
)
_ANY_ERROR = re.compile(r"\b(?:error|fatal)\b|ERR!", re.IGNORECASE)
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RolloutPhase(StrEnum):
    ROLLING_OUT = "rolling_out"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # The Deployment now runs another deployment_id: this one will never finish.
    SUPERSEDED = "superseded"


@dataclass(frozen=True)
class Rollout:
    """Where one deployment's rollout stands.

    ``superseded``: the Deployment now runs another deployment_id; this one will never finish
    (the message names the other id). ``ready_replicas`` counts this deployment's ready pods.
    """

    phase: RolloutPhase
    message: str
    ready_replicas: int
    replicas: int
    missing: bool = False  # the Deployment is not in the cluster at all

    @property
    def finished(self) -> bool:
        return self.phase != RolloutPhase.ROLLING_OUT


class JobPhase(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# How many of a failed command's last output lines say why it failed.
FAILURE_TAIL_LINES = 10


@dataclass(frozen=True)
class JobState:
    """Where a Job (a release command, a run) stands, from the Job and its pod.

    ``exit_code`` is the command's once it has exited; ``message`` says why a failed Job
    failed: the command's last output lines, the fetcher's error, or the deadline.
    """

    name: str
    phase: JobPhase
    exit_code: int | None
    message: str
    command: tuple[str, ...]
    labels: dict[str, str]
    annotations: dict[str, str]
    created_at: datetime | None
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.phase != JobPhase.RUNNING


@dataclass(frozen=True)
class ClusterEvent:
    timestamp: datetime
    type: str  # Normal or Warning
    reason: str
    message: str
    object_kind: str
    object_name: str
    count: int


@dataclass(frozen=True)
class LogLine:
    ts: datetime
    pod: str
    container: str
    message: str


def api_client(kubeconfig: str | None) -> ApiClient:
    """A client for the kubeconfig at ``kubeconfig``, or the pod's in-cluster identity."""
    configuration = kubernetes.client.Configuration()
    if kubeconfig:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration, persist_config=False
        )
    else:
        kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    # One retry on a refused connection, not urllib3's three: an unreachable API must turn
    # into a 503 well inside a Lambda's timeout.
    configuration.retries = 1
    return ApiClient(configuration)


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the Kubernetes API could not answer (the API layer's 503).

    Unreachable (refused, timed out, DNS): urllib3 raises ``MaxRetryError`` or another
    ``urllib3.exceptions.HTTPError``. Reachable but failing: ``ApiException`` with status 0
    (no HTTP response the client understood) or 5xx (503 from an overloaded or down server).
    """
    if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, ApiException):
        status = exc.status or 0
        return status == 0 or status >= 500 or status == 429
    return False


class Cluster:
    """One namespace of one cluster, through the official client.

    Every request is one of those granted by ``infra/k8s/rbac.yaml`` (and the RBAC test holds
    the two to each other): apply secrets/services/deployments, get deployments, list
    replicasets, pods and events, get pods/log; create, get, list and delete jobs; delete an
    app's Deployment and Service, and its Secrets by label selector.
    """

    def __init__(
        self,
        api: ApiClient,
        namespace: str,
        *,
        crash_restarts: int = 3,
        log_settle_seconds: float = 2.0,
        request_timeout: tuple[float, float] = (3.0, 30.0),
    ) -> None:
        self.namespace = namespace
        self._core = kubernetes.client.CoreV1Api(api)
        self._apps = kubernetes.client.AppsV1Api(api)
        self._batch = kubernetes.client.BatchV1Api(api)
        self._crash_restarts = crash_restarts
        self._log_settle = timedelta(seconds=log_settle_seconds)
        self._timeout = request_timeout

    # -- writes ------------------------------------------------------------------------------

    def apply(self, manifests: list[dict[str, Any]]) -> None:
        """Server-side apply each manifest in order (fieldManager=aether, force).

        Re-applying what is already there changes nothing (same resourceVersion, same
        generation). The namespace must exist; this never creates one.
        """
        for manifest in manifests:
            kind, name = manifest["kind"], manifest["metadata"]["name"]
            if manifest["metadata"].get("namespace", self.namespace) != self.namespace:
                raise ValueError(f"{kind} {name} is not for namespace {self.namespace}")
            options: dict[str, Any] = {
                "field_manager": MANAGER,
                "force": True,
                "_content_type": _APPLY,
                "_request_timeout": self._timeout,
            }
            if kind == "Secret":
                self._core.patch_namespaced_secret(name, self.namespace, manifest, **options)
            elif kind == "Service":
                self._core.patch_namespaced_service(name, self.namespace, manifest, **options)
            elif kind == "Deployment":
                self._apps.patch_namespaced_deployment(name, self.namespace, manifest, **options)
            else:
                raise ValueError(f"unexpected kind {kind}")

    def prune_config_secrets(self, app_name: str, keep_deployment_id: str) -> None:
        """Delete the config Secrets of the app's other releases, once this one serves.

        A delete by label selector: the control plane never reads a Secret back.
        """
        self._core.delete_collection_namespaced_secret(
            self.namespace,
            label_selector=config_secrets_selector(app_name, keep_deployment_id),
            _request_timeout=self._timeout,
        )

    def create_job(self, manifest: dict[str, Any]) -> bool:
        """Create the Job; False when it exists already (a retried step creates it once)."""
        if manifest["metadata"].get("namespace", self.namespace) != self.namespace:
            raise ValueError(f"Job {manifest['metadata']['name']} is not for {self.namespace}")
        try:
            # The client serializes a plain dict as it would its own model.
            self._batch.create_namespaced_job(
                self.namespace,
                manifest,  # type: ignore[arg-type]
                _request_timeout=self._timeout,
            )
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def delete_job(self, name: str) -> bool:
        """Delete the Job and its pod (which stops its command); False if it was gone."""
        try:
            self._batch.delete_namespaced_job(
                name,
                self.namespace,
                # batch/v1 orphans a Job's pods unless told otherwise.
                propagation_policy="Background",
                _request_timeout=self._timeout,
            )
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def remove_app(self, app_name: str) -> None:
        """Delete the app's Jobs, its Deployment (its ReplicaSets and pods go with it), its
        Service and every Secret of its (pull token and each release's config); what is
        already gone is no error, so a teardown that stopped half-way can run again."""
        for purpose in JobPurpose:
            for job in self.jobs(app_name, purpose):
                self.delete_job(job.name)
        for delete in (
            self._apps.delete_namespaced_deployment,
            self._core.delete_namespaced_service,
        ):
            try:
                delete(
                    app_name,
                    self.namespace,
                    propagation_policy="Background",
                    _request_timeout=self._timeout,
                )
            except ApiException as error:
                if error.status != 404:
                    raise
        # By label selector, as for older releases' config: the control plane never reads a
        # Secret back, so it never learns their names.
        self._core.delete_collection_namespaced_secret(
            self.namespace, label_selector=label_selector(app_name), _request_timeout=self._timeout
        )

    # -- reads -------------------------------------------------------------------------------

    def job(self, name: str) -> JobState | None:
        """The Job ``name`` and its pod's outcome, or None when there is no such Job."""
        try:
            found = self._batch.read_namespaced_job(
                name, self.namespace, _request_timeout=self._timeout
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        pods = self._core.list_namespaced_pod(
            self.namespace,
            label_selector=f"{JOB_NAME_LABEL}={name}",
            _request_timeout=self._timeout,
        ).items
        return _job_state(found, pods)

    def jobs(self, app_name: str, purpose: JobPurpose) -> list[JobState]:
        """The app's Jobs of ``purpose`` the cluster still keeps, newest first."""
        selector = jobs_selector(app_name, purpose)
        found = self._batch.list_namespaced_job(
            self.namespace, label_selector=selector, _request_timeout=self._timeout
        ).items
        pods = self._core.list_namespaced_pod(
            self.namespace, label_selector=selector, _request_timeout=self._timeout
        ).items
        by_job: dict[str, list[Any]] = {}
        for pod in pods:
            job_name = ((pod.metadata.labels if pod.metadata else None) or {}).get(JOB_NAME_LABEL)
            by_job.setdefault(job_name or "", []).append(pod)
        states = [
            _job_state(job, by_job.get((job.metadata.name if job.metadata else None) or "", []))
            for job in found
        ]
        oldest = datetime.min.replace(tzinfo=UTC)
        return sorted(states, key=lambda state: state.created_at or oldest, reverse=True)

    def ping(self) -> None:
        """A cheap call that proves reachability, credentials and the Role (for /readyz)."""
        self._core.list_namespaced_pod(
            self.namespace, label_selector="app=aether", limit=1, _request_timeout=self._timeout
        )

    def service_url(self, app_name: str) -> str | None:
        """Where the app answers: the Service's load-balancer address when one is published,
        else its in-cluster DNS name."""
        service = self._core.read_namespaced_service(
            app_name, self.namespace, _request_timeout=self._timeout
        )
        load_balancer = service.status.load_balancer if service.status else None
        for ingress in (load_balancer.ingress if load_balancer else None) or []:
            host = ingress.ip or ingress.hostname
            ports = [p.port for p in ingress.ports or [] if p.port]
            if host:
                return f"http://{host}:{ports[0]}" if ports else f"http://{host}"
        return f"http://{app_name}.{self.namespace}.svc.cluster.local"

    def has_workload(self, app_name: str) -> bool:
        """Whether the app's Deployment exists (a restarted or new cluster has none)."""
        try:
            self._apps.read_namespaced_deployment(
                app_name, self.namespace, _request_timeout=self._timeout
            )
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def rollout(self, app_name: str, deployment_id: str) -> Rollout:
        """This deployment's rollout, from the Deployment's status and its own pods."""
        try:
            deployment = self._apps.read_namespaced_deployment(
                app_name, self.namespace, _request_timeout=self._timeout
            )
        except ApiException as error:
            if error.status != 404:
                raise
            # Asked after an apply: gone means someone deleted it (the caller knows whether
            # the apply happened).
            return Rollout(
                RolloutPhase.FAILED, f"Deployment {app_name} not found", 0, 0, missing=True
            )
        spec, status = deployment.spec, deployment.status
        wanted = spec.replicas if spec and spec.replicas is not None else 1
        template = spec.template.metadata if spec else None
        current = ((template.labels if template else None) or {}).get("deployment_id")
        if current != deployment_id:
            by = current or "a deployment Aether did not make"
            return Rollout(RolloutPhase.SUPERSEDED, f"superseded by {by}", 0, wanted)

        pods = self._pods(app_name, deployment_id)
        ready = sum(1 for pod in pods if _pod_ready(pod))
        generation = deployment.metadata.generation if deployment.metadata else None
        observed = status.observed_generation if status else None
        if status is None or observed is None or (generation or 0) > observed:
            return Rollout(RolloutPhase.ROLLING_OUT, "waiting for the controller", ready, wanted)
        updated = status.updated_replicas or 0
        available = status.available_replicas or 0
        total = status.replicas or 0
        if updated == wanted and available >= wanted and total == wanted:
            return Rollout(
                RolloutPhase.SUCCEEDED, f"{available} of {wanted} replicas available", ready, wanted
            )

        failure = next((f for f in (self._pod_failure(pod) for pod in pods) if f), None)
        progressing = next(
            (c for c in status.conditions or [] if c.type == "Progressing"),
            None,
        )
        if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
            detail = failure or next((d for d in map(_pod_waiting, pods) if d), None)
            message = f"ProgressDeadlineExceeded: {progressing.message or 'timed out'}"
            return Rollout(
                RolloutPhase.FAILED, f"{message}; {detail}" if detail else message, ready, wanted
            )
        if failure is not None:
            return Rollout(RolloutPhase.FAILED, failure, ready, wanted)
        message = f"{min(updated, wanted)} of {wanted} updated, {ready} ready"
        return Rollout(RolloutPhase.ROLLING_OUT, message, ready, wanted)

    def events(self, app_name: str) -> list[ClusterEvent]:
        """Events about the app's Deployment, its ReplicaSets and their pods, oldest first."""
        selector = label_selector(app_name)
        replica_sets = self._apps.list_namespaced_replica_set(
            self.namespace, label_selector=selector, _request_timeout=self._timeout
        ).items
        pods = self._core.list_namespaced_pod(
            self.namespace, label_selector=selector, _request_timeout=self._timeout
        ).items
        rs_names = {rs.metadata.name for rs in replica_sets if rs.metadata and rs.metadata.name}
        pod_names = {p.metadata.name for p in pods if p.metadata and p.metadata.name}
        # Every event of the namespace, as JSON: the client's models would cost a
        # deserialization of each one of them, on every poll of every rollout.
        listed: Any = self._core.list_namespaced_event(  # a urllib3 response, unparsed
            self.namespace, _request_timeout=self._timeout, _preload_content=False
        )
        events: list[tuple[ClusterEvent, int]] = []
        for event in json.loads(listed.data).get("items") or []:
            involved = event.get("involvedObject") or {}
            kind, name = str(involved.get("kind") or ""), str(involved.get("name") or "")
            if not _involves(app_name, kind, name, rs_names, pod_names):
                continue
            metadata = event.get("metadata") or {}
            stamp = (
                event.get("lastTimestamp")
                or event.get("eventTime")
                or event.get("firstTimestamp")
                or metadata.get("creationTimestamp")
            )
            moment = _parse_rfc3339(str(stamp)) if stamp else None
            version = str(metadata.get("resourceVersion") or "")
            written = int(version) if version.isdigit() else 0
            events.append(
                (
                    ClusterEvent(
                        timestamp=moment or datetime.min.replace(tzinfo=UTC),
                        type=str(event.get("type") or ""),
                        reason=str(event.get("reason") or ""),
                        message=str(event.get("message") or ""),
                        object_kind=kind,
                        object_name=name,
                        count=int(event.get("count") or 1),
                    ),
                    written,
                )
            )
        # Event timestamps have whole seconds; within one, the order of writes breaks the tie.
        events.sort(key=lambda pair: (pair[0].timestamp, pair[1]))
        return [event for event, _ in events]

    def logs(
        self,
        app_name: str,
        *,
        since: datetime | None = None,
        tail: int | None = None,
        deployment_id: str | None = None,
        job: str | None = None,
    ) -> list[LogLine]:
        """Log lines of the app's pods (fetcher and app containers), oldest first; with
        ``job``, of that Job's pods instead (fetcher and command).

        Only lines strictly after ``since`` and no newer than a settle horizon (now minus
        ``log_settle_seconds``, taken before reading) are returned, compared at microsecond
        precision. Every line up to the horizon has been written by the time the pods are
        read, so a caller that pages with ``since = last line's ts`` sees each line once: no
        gap when pods log concurrently, no duplicate. ``tail`` keeps the last ``tail`` lines.
        A Job whose pods have all finished has written its last line: no horizon then.
        """
        if job is not None:
            selector = f"app={JOB_APP_LABEL},app_name={app_name},{JOB_NAME_LABEL}={job}"
            containers: tuple[str, ...] = (FETCH_CONTAINER, JOB_CONTAINER)
        else:
            selector = label_selector(app_name, deployment_id)
            containers = (FETCH_CONTAINER, APP_CONTAINER)
        pods = self._core.list_namespaced_pod(
            self.namespace, label_selector=selector, _request_timeout=self._timeout
        ).items
        settled = job is not None and all(_pod_finished(pod) for pod in pods)
        horizon = datetime.now(UTC) - (timedelta(0) if settled else self._log_settle)
        if since is not None:
            since = _utc(since)
            if since >= horizon:
                return []
        if tail is not None and tail <= 0:
            return []
        since_seconds: int | None = None
        if since is not None and since > _UNIX_EPOCH:
            # The client has no sinceTime: ask for a wider window (a minute of slack for clock
            # skew with the API server), then cut exactly here. Every line is newer than 1970:
            # an older ``since`` asks for them all (a window that long overflows servers).
            since_seconds = math.ceil((datetime.now(UTC) - since).total_seconds()) + 60
        lines: list[LogLine] = []
        for pod in pods:
            name = pod.metadata.name if pod.metadata else None
            if not name:
                continue
            for container in containers:
                lines.extend(self._container_log(name, container, since_seconds, tail))
        selected = [
            line for line in lines if (since is None or line.ts > since) and line.ts <= horizon
        ]
        selected.sort(key=lambda line: (line.ts, line.pod, line.container))
        return selected[-tail:] if tail is not None else selected

    # -- internals ---------------------------------------------------------------------------

    def _pods(self, app_name: str, deployment_id: str) -> list[Any]:
        found = self._core.list_namespaced_pod(
            self.namespace,
            label_selector=label_selector(app_name, deployment_id),
            _request_timeout=self._timeout,
        )
        return [p for p in found.items if not (p.metadata and p.metadata.deletion_timestamp)]

    def _container_log(
        self, pod: str, container: str, since_seconds: int | None, tail: int | None
    ) -> list[LogLine]:
        try:
            text = self._core.read_namespaced_pod_log(
                pod,
                self.namespace,
                container=container,
                timestamps=True,
                since_seconds=since_seconds,
                tail_lines=tail,
                _request_timeout=self._timeout,
            )
        except ApiException as error:
            # 400: the container has not started yet (or the pod has no such container);
            # 404: the pod went away between the list and the read. Neither has lines.
            if error.status in (400, 404):
                return []
            raise
        lines: list[LogLine] = []
        for raw in str(text or "").splitlines():
            stamp, _, message = raw.partition(" ")
            moment = _parse_rfc3339(stamp)
            if moment is not None:
                lines.append(LogLine(moment, pod, container, message))
        return lines

    def _pod_failure(self, pod: Any) -> str | None:
        """Why this pod will not become ready by itself, or None while it still might."""
        name = pod.metadata.name if pod.metadata else "?"
        status = pod.status
        if status is None:
            return None
        for init, statuses in (
            (True, status.init_container_statuses),
            (False, status.container_statuses),
        ):
            for container in statuses or []:
                waiting = container.state.waiting if container.state else None
                what = f"{'init container' if init else 'container'} {container.name}"
                stopped = _fatal_termination(container)
                if stopped is not None:
                    return f"pod {name}: {what}: {stopped}"
                if waiting is not None and waiting.reason in _FATAL_WAITING:
                    return f"pod {name}: {what}: {waiting.reason}: {waiting.message or ''}".rstrip(
                        ": "
                    )
                if container.restart_count < self._crash_restarts:
                    continue
                failing = (waiting is not None and waiting.reason == "CrashLoopBackOff") or (
                    container.state is not None
                    and container.state.terminated is not None
                    and container.state.terminated.exit_code != 0
                )
                if failing:
                    verb = "failed" if init else "is crash-looping"
                    return (
                        f"pod {name}: {what} {verb} ({container.restart_count} restarts"
                        f"{_last_exit(container)})"
                    )
        return None


def _pod_finished(pod: Any) -> bool:
    return (pod.status.phase if pod.status else None) in ("Succeeded", "Failed")


def _job_state(job: Any, pods: list[Any]) -> JobState:
    """A Job's phase and outcome: its conditions say whether it finished, its (only) pod how."""
    status = job.status
    conditions = [c for c in (status.conditions if status else None) or [] if c.status == "True"]
    finished = next((c for c in conditions if c.type in ("Complete", "Failed")), None)
    template = job.spec.template.spec if job.spec and job.spec.template else None
    container = next((c for c in (template.containers if template else None) or []), None)
    command = tuple((container.command or []) + (container.args or [])) if container else ()
    pod = max(pods, key=lambda p: p.metadata.creation_timestamp or 0, default=None)
    exit_code, failure = _job_pod_outcome(pod)
    if finished is not None and finished.type == "Complete":
        phase, message = JobPhase.SUCCEEDED, ""
    elif finished is not None:
        phase = JobPhase.FAILED
        if finished.reason == "DeadlineExceeded":
            deadline = job.spec.active_deadline_seconds if job.spec else None
            message = f"it ran longer than its {deadline} s limit (DeadlineExceeded)"
        else:
            message = failure or finished.message or finished.reason or "the Job failed"
    elif failure is not None and pod is not None and _pod_finished(pod):
        phase, message = JobPhase.FAILED, failure  # the controller has not caught up yet
    elif pod is not None and (stuck := _stuck(pod)) is not None:
        phase, message = JobPhase.FAILED, stuck
    else:
        phase, message = JobPhase.RUNNING, ""
    metadata = job.metadata
    finished_at = (status.completion_time if status else None) or (
        finished.last_transition_time if finished is not None else None
    )
    return JobState(
        name=metadata.name,
        phase=phase,
        exit_code=exit_code,
        message=message,
        command=command,
        labels=dict(metadata.labels or {}),
        annotations=dict(metadata.annotations or {}),
        created_at=_utc(metadata.creation_timestamp) if metadata.creation_timestamp else None,
        finished_at=_utc(finished_at) if finished_at else None,
    )


def _job_pod_outcome(pod: Any) -> tuple[int | None, str | None]:
    """The command's exit code once it exited, and why the pod failed (None if it did not)."""
    status = pod.status if pod is not None else None
    if status is None:
        return None, None
    for fetch in status.init_container_statuses or []:
        terminated = fetch.state.terminated if fetch.state else None
        if terminated is not None and terminated.exit_code:
            detail = (
                first_error_line(terminated.message or "") or f"exit code {terminated.exit_code}"
            )
            return None, f"fetching the artifact failed: {detail}"
    for container in status.container_statuses or []:
        terminated = container.state.terminated if container.state else None
        if container.name != JOB_CONTAINER or terminated is None:
            continue
        if not terminated.exit_code:
            return 0, None
        said = [line for line in (terminated.message or "").splitlines() if line.strip()]
        tail = "\n".join(said[-FAILURE_TAIL_LINES:])
        stated = f"exited with code {terminated.exit_code}"
        return int(terminated.exit_code), f"{stated}:\n{tail}" if tail else stated
    return None, None


def _stuck(pod: Any) -> str | None:
    """Why a Job's pod can never start its command (a missing image, a broken config)."""
    status = pod.status
    for container in [*(status.init_container_statuses or []), *(status.container_statuses or [])]:
        waiting = container.state.waiting if container.state else None
        if waiting is not None and waiting.reason in _FATAL_WAITING:
            return f"container {container.name}: {waiting.reason}: {waiting.message or ''}".rstrip(
                ": "
            )
    return None


def _involves(app_name: str, kind: str, name: str, rs_names: set[str], pod_names: set[str]) -> bool:
    if kind == "Deployment":
        return name == app_name
    if kind == "ReplicaSet":
        return name in rs_names
    if kind == "Pod":
        # Pods deleted since keep their events: their names start with their ReplicaSet's.
        return name in pod_names or any(name.startswith(f"{rs}-") for rs in rs_names)
    return False


def _pod_ready(pod: Any) -> bool:
    conditions: Iterable[Any] = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _pod_waiting(pod: Any) -> str | None:
    """Why a pod is not ready yet, for a message: its first waiting or unready container."""
    name = pod.metadata.name if pod.metadata else "?"
    status = pod.status
    if status is None:
        return None
    for container in [*(status.init_container_statuses or []), *(status.container_statuses or [])]:
        waiting = container.state.waiting if container.state else None
        if waiting is not None and waiting.reason not in ("PodInitializing", None):
            detail = f": {waiting.message}" if waiting.message else ""
            return f"pod {name}: container {container.name} waiting: {waiting.reason}{detail}"
    ports = {
        c.name: [p.container_port for p in c.ports or [] if p.container_port]
        for c in (pod.spec.containers if pod.spec else None) or []
    }
    for container in status.container_statuses or []:
        if not container.ready:
            given = ports.get(container.name)
            if container.name == APP_CONTAINER and given:
                return (
                    f"pod {name}: container {container.name} not ready: it never accepted "
                    f"connections on port {given[0]}, which Aether passes in the PORT "
                    "environment variable"
                )
            return f"pod {name}: container {container.name} not ready"
    return None


def _fatal_termination(container: Any) -> str | None:
    for state in (container.state, container.last_state):
        terminated = state.terminated if state else None
        if terminated is not None and terminated.reason in _FATAL_TERMINATED:
            return f"{terminated.reason}: {terminated.message or ''}".rstrip(": ")
    return None


def _last_exit(container: Any) -> str:
    for state in (container.state, container.last_state):
        terminated = state.terminated if state else None
        if terminated is not None:
            detail = first_error_line(terminated.message or terminated.reason or "")
            text = f", last exit code {terminated.exit_code}"
            return f"{text}: {detail}" if detail else text
    return ""


def first_error_line(output: str) -> str:
    """The line of a process's output that says what went wrong: the first JavaScript error,
    else the first line that says error, else the last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    javascript = next((line for line in lines if _JS_ERROR.match(line)), None)
    said = javascript or next((line for line in lines if _ANY_ERROR.search(line)), None)
    if said is not None:
        return said
    return lines[-1] if lines else ""


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _parse_rfc3339(stamp: str) -> datetime | None:
    """RFC 3339 with up to nanoseconds (the kubelet's, an event's), cut to microseconds."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", stamp)
    if match is None:
        return None
    head, fraction, zone = match.groups()
    micros = (fraction or "").ljust(6, "0")[:6]
    moment = datetime.fromisoformat(f"{head}.{micros}{'+00:00' if zone == 'Z' else zone}")
    return moment.astimezone(UTC)
