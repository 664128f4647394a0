"""The Job controller of kube-controller-manager, in small, with the TTL-after-finished one.

A Job runs one pod at a time from its template (``completions`` and ``parallelism`` are 1):
a pod that succeeds completes the Job; a pod that fails is replaced until more than
``backoffLimit`` have failed. ``activeDeadlineSeconds`` counts from the Job's ``startTime``:
past it, its running pods are deleted and the Job fails with ``DeadlineExceeded``. A finished
Job keeps its pods (their logs and exit codes stay readable) until it is deleted, by a client
or, ``ttlSecondsAfterFinished`` after it finished, by this controller (with its pods).

Not modelled: several completions or parallel pods, indexed Jobs, suspend, pod failure
policies, the back-off delay between retries, and the ``SuccessCriteriaMet`` and
``FailureTarget`` conditions that precede ``Complete`` and ``Failed`` since 1.31.
"""

from __future__ import annotations

import copy
import time

from infra.kubesim.clock import format_time, parse_time, utc_now
from infra.kubesim.controller import ControlLoop, controlled_by, owner_reference, set_status
from infra.kubesim.events import EventRecorder
from infra.kubesim.resources import JOBS, PODS, KubeObject
from infra.kubesim.store import Store

_COMPONENT = "job-controller"
_WATCHED_KINDS = (JOBS, PODS)


def _phase(pod: KubeObject) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _ready(pod: KubeObject) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def finished_condition(job: KubeObject) -> KubeObject | None:
    """The Job's ``Complete`` or ``Failed`` condition once it has one, else None."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return dict(condition)
    return None


class JobController(ControlLoop):
    """Reconciles every Job whenever a Job or a pod changes, and on a resync (deadlines and
    TTLs pass with nothing changing)."""

    def __init__(self, store: Store, events: EventRecorder, resync_interval: float = 0.1) -> None:
        # When each Job (by uid) started and finished, by this process's monotonic clock: the
        # times in status have whole seconds, too coarse for a deadline of 1.
        self._started: dict[str, float] = {}
        self._finished: dict[str, float] = {}
        super().__init__(
            store, events, resync_interval, watched=_WATCHED_KINDS, name="kubesim-jobs"
        )

    def reconcile(self) -> None:
        jobs, _ = self._store.list_objects(JOBS, None)
        for job in jobs:
            self._sync(job)
        live = {job["metadata"]["uid"] for job in jobs}
        self._started = {k: v for k, v in self._started.items() if k in live}
        self._finished = {k: v for k, v in self._finished.items() if k in live}

    def _sync(self, job: KubeObject) -> None:
        metadata, spec = job["metadata"], job["spec"]
        namespace, name, uid = metadata["namespace"], metadata["name"], metadata["uid"]
        status: KubeObject = copy.deepcopy(job.get("status") or {})
        if finished_condition(job) is not None:
            self._collect_if_expired(job)
            return
        pods, _ = self._store.list_objects(PODS, namespace, lambda p: controlled_by(p, job))
        pods = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        succeeded = [p for p in pods if _phase(p) == "Succeeded"]
        failed = [p for p in pods if _phase(p) == "Failed"]
        active = [p for p in pods if _phase(p) not in ("Succeeded", "Failed")]
        now = time.monotonic()
        started = self._started.setdefault(uid, now)
        status.setdefault("startTime", format_time(utc_now()))
        deadline = spec.get("activeDeadlineSeconds")
        finish: tuple[str, str, str] | None = None
        if succeeded:
            finish = ("Complete", "", "")
        elif len(failed) > int(spec.get("backoffLimit", 6)):
            finish = (
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
        elif deadline is not None and now - started >= float(deadline):
            for pod in active:
                self._delete_pod(job, pod)
            failed += active
            active = []
            finish = (
                "Failed",
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            )
        elif not active:
            active.append(self._create_pod(job))
        status.update(
            active=len(active),
            succeeded=len(succeeded),
            failed=len(failed),
            ready=sum(1 for p in active if _ready(p)),
        )
        status = {k: v for k, v in status.items() if v or k in ("startTime", "ready")}
        if finish is not None:
            kind, reason, message = finish
            moment = format_time(utc_now())
            condition: KubeObject = {
                "type": kind,
                "status": "True",
                "lastProbeTime": moment,
                "lastTransitionTime": moment,
            }
            if reason:
                condition.update(reason=reason, message=message)
            status["conditions"] = [*(status.get("conditions") or []), condition]
            if kind == "Complete":
                status["completionTime"] = moment
            self._finished[uid] = now
        self._store.modify(JOBS, namespace, name, set_status(status), subresource="status")
        if finish is not None:
            kind, reason, message = finish
            if kind == "Complete":
                self._events.record(job, "Normal", "Completed", "Job completed", _COMPONENT)
            else:
                self._events.record(job, "Warning", reason, message, _COMPONENT)

    def _create_pod(self, job: KubeObject) -> KubeObject:
        template = job["spec"]["template"]
        meta = template.get("metadata") or {}
        pod = self._store.create(
            PODS,
            job["metadata"]["namespace"],
            {
                "metadata": {
                    "generateName": f"{job['metadata']['name']}-",
                    "labels": copy.deepcopy(meta.get("labels") or {}),
                    "annotations": copy.deepcopy(meta.get("annotations") or {}),
                    "ownerReferences": [owner_reference(job)],
                },
                "spec": copy.deepcopy(template["spec"]),
            },
        )
        self._events.record(
            job, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}", _COMPONENT
        )
        return pod

    def _delete_pod(self, job: KubeObject, pod: KubeObject) -> None:
        name = pod["metadata"]["name"]
        self._store.delete(PODS, pod["metadata"]["namespace"], name)
        self._events.record(job, "Normal", "SuccessfulDelete", f"Deleted pod: {name}", _COMPONENT)

    def _collect_if_expired(self, job: KubeObject) -> None:
        """Delete a finished Job (and, in the background, its pods) once its TTL has passed."""
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        metadata = job["metadata"]
        finished = self._finished.get(metadata["uid"])
        if finished is None:
            # Finished before this controller knew it (a restart): the condition's time says.
            condition = finished_condition(job) or {}
            moment = parse_time(condition.get("lastTransitionTime") or format_time(utc_now()))
            finished = time.monotonic() - (utc_now() - moment).total_seconds()
            self._finished[metadata["uid"]] = finished
        if time.monotonic() - finished >= float(ttl):
            self._store.delete(JOBS, metadata["namespace"], metadata["name"])
