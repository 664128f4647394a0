"""The Deployment and ReplicaSet controllers of kube-controller-manager, in small.

A new pod template gets a new ReplicaSet scaled to the full replica count next to the old one
(a rolling update with 100% surge); the old ReplicaSets are scaled to zero once the new one is
fully available. With ``strategy.type: Recreate`` the old pods go first. Either way a rollout
passes through visible in-between states (updatedReplicas and availableReplicas lagging behind).
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from infra.kubesim.api_errors import ApiError
from infra.kubesim.clock import format_time, parse_time, utc_now
from infra.kubesim.events import EventRecorder
from infra.kubesim.resources import DEPLOYMENTS, PODS, REPLICA_SETS, KubeObject, ResourceKind
from infra.kubesim.store import Store, WatchEvent

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
TEMPLATE_HASH_LABEL = "pod-template-hash"
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_WATCHED_KINDS = (DEPLOYMENTS, REPLICA_SETS, PODS)


def template_hash(template: KubeObject) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_HASH_ALPHABET[b % len(_HASH_ALPHABET)] for b in digest[:10])


def owner_reference(owner: KubeObject) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controlled_by(obj: KubeObject, owner: KubeObject) -> bool:
    return any(
        ref.get("uid") == owner["metadata"]["uid"] and ref.get("controller")
        for ref in obj["metadata"].get("ownerReferences") or []
    )


def _controller_uids(obj: KubeObject) -> list[str]:
    return [
        ref["uid"]
        for ref in obj["metadata"].get("ownerReferences") or []
        if ref.get("controller") and ref.get("uid")
    ]


def by_controller(objects: list[KubeObject]) -> dict[str, list[KubeObject]]:
    """``objects`` grouped by the uid of the owner that controls each (the others left out)."""
    grouped: dict[str, list[KubeObject]] = {}
    for obj in objects:
        for uid in _controller_uids(obj):
            grouped.setdefault(uid, []).append(obj)
    return grouped


def _revision(obj: KubeObject) -> int:
    return int((obj["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION, "0"))


def _pod_ready_since(pod: KubeObject) -> float | None:
    """Seconds since the pod became Ready, or None when it is not ready."""
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp") or status.get("phase") != "Running":
        return None
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            since = parse_time(condition["lastTransitionTime"])
            return (utc_now() - since).total_seconds()
    return None


def _is_active(pod: KubeObject) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _resolve_max_unavailable(spec: KubeObject) -> int:
    strategy = spec.get("strategy") or {}
    replicas = int(spec.get("replicas", 1))
    if strategy.get("type") != "RollingUpdate" or replicas == 0:
        return 0
    value = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    if isinstance(value, str) and value.endswith("%"):
        return replicas * int(value[:-1]) // 100
    return int(value)


def set_status(status: KubeObject) -> Callable[[KubeObject], KubeObject]:
    def change(obj: KubeObject) -> KubeObject:
        obj["status"] = status
        return obj

    return change


class ControlLoop:
    """A controller's loop: ``reconcile`` whenever an object of ``watched`` changes, and on
    a periodic resync (deadlines pass with nothing changing). A subclass sets up its own
    state before calling ``__init__``, which starts the thread."""

    def __init__(
        self,
        store: Store,
        events: EventRecorder,
        resync_interval: float,
        *,
        watched: tuple[ResourceKind, ...],
        name: str,
    ) -> None:
        self._store = store
        self._events = events
        self._resync_interval = resync_interval
        self._watched = watched
        self._wakeup = threading.Event()
        self._stopping = False
        store.subscribe(self._on_change)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        self._thread.join(timeout=5)

    def reconcile(self) -> None:
        raise NotImplementedError

    def _on_change(self, event: WatchEvent) -> None:
        if event.kind in self._watched:
            self._wakeup.set()

    def _run(self) -> None:
        while not self._stopping:
            self._wakeup.wait(self._resync_interval)
            self._wakeup.clear()
            if self._stopping:
                return
            try:
                self.reconcile()
            except ApiError:
                # Something changed under us (deleted, conflict): the next pass starts over.
                continue


class WorkloadController(ControlLoop):
    """Reconciles the Deployments and ReplicaSets that changed, or whose pods did.

    Like kube-controller-manager's work queues, a pass syncs only what a change touched and
    the rollouts still in progress (a periodic resync, because a rollout can time out with
    nothing changing); a settled Deployment costs nothing until something of it changes. A
    full pass runs at the start and every ``full_resync_interval`` seconds, as informers
    resync.
    """

    def __init__(
        self,
        store: Store,
        events: EventRecorder,
        resync_interval: float = 0.1,
        full_resync_interval: float = 30.0,
    ) -> None:
        # When each Deployment (by uid) last made progress; the wall clock in status only has
        # whole seconds, too coarse for a progressDeadlineSeconds of 1.
        self._last_progress: dict[str, float] = {}
        # Uids of Deployments and ReplicaSets a change touched since the last pass; written
        # by the store's listener, under the store's lock.
        self._touched: set[str] = set()
        # Deployments (by uid) whose rollout has not finished: every pass syncs them.
        self._unsettled: set[str] = set()
        self._full_resync_interval = full_resync_interval
        self._next_full_pass = 0.0
        super().__init__(
            store, events, resync_interval, watched=_WATCHED_KINDS, name="kubesim-controller"
        )

    def _on_change(self, event: WatchEvent) -> None:
        if event.kind not in self._watched:
            return
        metadata = event.object["metadata"]
        if event.kind is not PODS:
            self._touched.add(metadata["uid"])
        # A pod's change is its ReplicaSet's; a ReplicaSet's, its Deployment's.
        for ref in metadata.get("ownerReferences") or []:
            if ref.get("controller") and ref.get("uid"):
                self._touched.add(ref["uid"])
        self._wakeup.set()

    def reconcile(self) -> None:
        full = time.monotonic() >= self._next_full_pass
        if full:
            self._next_full_pass = time.monotonic() + self._full_resync_interval
        with self._store.lock:
            touched, self._touched = self._touched, set()
        wanted = touched | self._unsettled

        def selected(obj: KubeObject) -> bool:
            return (
                full
                or obj["metadata"]["uid"] in wanted
                or bool(wanted.intersection(_controller_uids(obj)))
            )

        # Each kind is listed once a pass, only what the pass syncs, grouped by owner: a pass
        # costs what changed, not ReplicaSets times pods (a long-lived cluster has hundreds).
        replica_sets, _ = self._store.list_objects(REPLICA_SETS, None, selected)
        pods = self._pods_of({rs["metadata"]["uid"] for rs in replica_sets})
        for replica_set in replica_sets:
            self._sync_replica_set(replica_set, pods.get(replica_set["metadata"]["uid"], []))
        # The Deployments of the ReplicaSets just synced too: their pods may have changed.
        wanted |= {uid for rs in replica_sets for uid in _controller_uids(rs)}
        deployments, _ = self._store.list_objects(DEPLOYMENTS, None, selected)
        uids = {d["metadata"]["uid"] for d in deployments}
        replica_sets, _ = self._store.list_objects(
            REPLICA_SETS, None, lambda rs: bool(uids.intersection(_controller_uids(rs)))
        )
        owned_replica_sets = by_controller(replica_sets)
        pods = self._pods_of({rs["metadata"]["uid"] for rs in replica_sets})
        unsettled: set[str] = set()
        for deployment in deployments:
            uid = deployment["metadata"]["uid"]
            if not self._sync_deployment(deployment, owned_replica_sets.get(uid, []), pods):
                unsettled.add(uid)
        # What was unsettled and is gone (deleted) is neither listed nor kept.
        self._unsettled = unsettled
        if full:
            self._last_progress = {k: v for k, v in self._last_progress.items() if k in uids}

    # -- ReplicaSets -------------------------------------------------------------------------

    def _pods_of(self, owners: set[str]) -> dict[str, list[KubeObject]]:
        pods, _ = self._store.list_objects(
            PODS, None, lambda p: bool(owners.intersection(_controller_uids(p)))
        )
        return by_controller(pods)

    def _sync_replica_set(self, replica_set: KubeObject, all_pods: list[KubeObject]) -> None:
        namespace = replica_set["metadata"]["namespace"]
        name = replica_set["metadata"]["name"]
        for finished in (p for p in all_pods if not _is_active(p)):
            self._store.delete(PODS, namespace, finished["metadata"]["name"])
        pods = [p for p in all_pods if _is_active(p)]
        wanted = int(replica_set["spec"].get("replicas", 1))
        template = replica_set["spec"]["template"]
        for _ in range(wanted - len(pods)):
            pod = self._store.create(
                PODS,
                namespace,
                {
                    "metadata": {
                        "generateName": f"{name}-",
                        "labels": copy.deepcopy(template["metadata"].get("labels") or {}),
                        "annotations": copy.deepcopy(template["metadata"].get("annotations") or {}),
                        "ownerReferences": [owner_reference(replica_set)],
                    },
                    "spec": copy.deepcopy(template["spec"]),
                },
            )
            pods.append(pod)
            self._events.record(
                replica_set,
                "Normal",
                "SuccessfulCreate",
                f"Created pod: {pod['metadata']['name']}",
                "replicaset-controller",
            )
        if len(pods) > wanted:
            # Remove pods that are not ready first, then the youngest.
            pods.sort(key=lambda p: (_pod_ready_since(p) is not None, p["metadata"]["name"]))
            for pod in pods[: len(pods) - wanted]:
                self._store.delete(PODS, namespace, pod["metadata"]["name"])
                self._events.record(
                    replica_set,
                    "Normal",
                    "SuccessfulDelete",
                    f"Deleted pod: {pod['metadata']['name']}",
                    "replicaset-controller",
                )
            pods = pods[len(pods) - wanted :]
        min_ready = int(replica_set["spec"].get("minReadySeconds", 0))
        ready = [p for p in pods if _pod_ready_since(p) is not None]
        available = [p for p in ready if (_pod_ready_since(p) or 0) >= min_ready]
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": len(ready),
            "availableReplicas": len(available),
            "observedGeneration": replica_set["metadata"]["generation"],
        }
        self._store.modify(REPLICA_SETS, namespace, name, set_status(status), subresource="status")

    # -- Deployments -------------------------------------------------------------------------

    def _sync_deployment(
        self,
        deployment: KubeObject,
        replica_sets: list[KubeObject],
        pods_by_owner: dict[str, list[KubeObject]],
    ) -> bool:
        """Sync one Deployment; True once it is settled (only a change can move it on)."""
        metadata, spec = deployment["metadata"], deployment["spec"]
        uid = metadata["uid"]
        self._last_progress.setdefault(uid, time.monotonic())
        pod_hash = template_hash(spec["template"])
        current = next(
            (
                rs
                for rs in replica_sets
                if rs["metadata"]["labels"].get(TEMPLATE_HASH_LABEL) == pod_hash
            ),
            None,
        )
        old = [rs for rs in replica_sets if rs is not current]
        wanted = int(spec.get("replicas", 1))
        recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
        created = False
        if not spec.get("paused"):
            if recreate and current is None and any(rs["status"].get("replicas") for rs in old):
                # Recreate: the new ReplicaSet waits until every old pod is gone.
                self._scale_all(deployment, old, 0)
            else:
                if current is None:
                    current = self._create_replica_set(deployment, replica_sets, pod_hash)
                    self._last_progress[uid] = time.monotonic()
                    created = True
                self._scale(deployment, current, wanted)
                current = self._promote(current, replica_sets)
                new_available = current["status"].get("availableReplicas", 0) >= wanted
                if recreate or new_available:
                    self._scale_all(deployment, old, 0)
            self._prune_history(deployment, old)
            if current is not None:
                self._annotate_revision(deployment, _revision(current))
        finished = self._update_deployment_status(
            deployment, current, replica_sets, pods_by_owner, created
        )
        return bool(spec.get("paused")) or (
            finished and not any(rs["spec"].get("replicas") for rs in old)
        )

    def _create_replica_set(
        self, deployment: KubeObject, existing: list[KubeObject], pod_hash: str
    ) -> KubeObject:
        namespace, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        template = copy.deepcopy(deployment["spec"]["template"])
        template["metadata"].setdefault("labels", {})[TEMPLATE_HASH_LABEL] = pod_hash
        selector = copy.deepcopy(deployment["spec"]["selector"])
        selector.setdefault("matchLabels", {})[TEMPLATE_HASH_LABEL] = pod_hash
        revision = max((_revision(rs) for rs in existing), default=0) + 1
        return self._store.create(
            REPLICA_SETS,
            namespace,
            {
                "metadata": {
                    "name": f"{name}-{pod_hash}",
                    "labels": dict(template["metadata"]["labels"]),
                    "annotations": {REVISION_ANNOTATION: str(revision)},
                    "ownerReferences": [owner_reference(deployment)],
                },
                "spec": {
                    "replicas": 0,
                    "minReadySeconds": deployment["spec"].get("minReadySeconds", 0),
                    "selector": selector,
                    "template": template,
                },
            },
        )

    def _promote(self, current: KubeObject, replica_sets: list[KubeObject]) -> KubeObject:
        """Going back to an older template makes its ReplicaSet the newest revision again."""
        others = [rs for rs in replica_sets if rs["metadata"]["uid"] != current["metadata"]["uid"]]
        newest = max((_revision(rs) for rs in others), default=0)
        if _revision(current) > newest:
            return current

        def bump(rs: KubeObject) -> KubeObject:
            rs["metadata"].setdefault("annotations", {})[REVISION_ANNOTATION] = str(newest + 1)
            return rs

        meta = current["metadata"]
        return self._store.modify(REPLICA_SETS, meta["namespace"], meta["name"], bump)

    def _scale(self, deployment: KubeObject, replica_set: KubeObject, replicas: int) -> None:
        before = int(replica_set["spec"].get("replicas", 0))
        if before == replicas:
            return

        def change(rs: KubeObject) -> KubeObject:
            rs["spec"]["replicas"] = replicas
            return rs

        meta = replica_set["metadata"]
        updated = self._store.modify(REPLICA_SETS, meta["namespace"], meta["name"], change)
        replica_set.update(updated)
        direction = "up" if replicas > before else "down"
        self._events.record(
            deployment,
            "Normal",
            "ScalingReplicaSet",
            f"Scaled {direction} replica set {meta['name']} from {before} to {replicas}",
            "deployment-controller",
        )

    def _scale_all(self, deployment: KubeObject, replica_sets: list[KubeObject], n: int) -> None:
        for replica_set in replica_sets:
            self._scale(deployment, replica_set, n)

    def _prune_history(self, deployment: KubeObject, old: list[KubeObject]) -> None:
        limit = int(deployment["spec"].get("revisionHistoryLimit", 10))
        idle = sorted(
            (
                rs
                for rs in old
                if not rs["spec"].get("replicas") and not rs["status"].get("replicas")
            ),
            key=_revision,
        )
        for replica_set in idle[: max(len(idle) - limit, 0)]:
            meta = replica_set["metadata"]
            self._store.delete(REPLICA_SETS, meta["namespace"], meta["name"])

    def _annotate_revision(self, deployment: KubeObject, revision: int) -> None:
        if _revision(deployment) == revision:
            return

        def change(obj: KubeObject) -> KubeObject:
            obj["metadata"].setdefault("annotations", {})[REVISION_ANNOTATION] = str(revision)
            return obj

        meta = deployment["metadata"]
        self._store.modify(DEPLOYMENTS, meta["namespace"], meta["name"], change)

    def _update_deployment_status(
        self,
        deployment: KubeObject,
        current: KubeObject | None,
        replica_sets: list[KubeObject],
        pods_by_owner: dict[str, list[KubeObject]],
        created_replica_set: bool,
    ) -> bool:
        """Write the Deployment's status; True when its rollout is complete or has failed."""
        metadata, spec = deployment["metadata"], deployment["spec"]
        namespace, uid = metadata["namespace"], metadata["uid"]
        wanted = int(spec.get("replicas", 1))
        owned = {rs["metadata"]["uid"] for rs in replica_sets}
        if current is not None:
            owned.add(current["metadata"]["uid"])
        pods = [
            pod
            for owner in sorted(owned)
            for pod in pods_by_owner.get(owner, [])
            if _is_active(pod)
        ]
        min_ready = int(spec.get("minReadySeconds", 0))
        ready_for = [_pod_ready_since(p) for p in pods]
        ready = sum(1 for seconds in ready_for if seconds is not None)
        available = sum(1 for seconds in ready_for if seconds is not None and seconds >= min_ready)
        updated = (
            sum(1 for p in pods if current is not None and controlled_by(p, current))
            if current is not None
            else 0
        )
        previous: KubeObject = deployment.get("status") or {}
        status: KubeObject = {
            "observedGeneration": metadata["generation"],
            "replicas": len(pods),
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
        }
        if wanted - available > 0:
            status["unavailableReplicas"] = wanted - available
        status = {k: v for k, v in status.items() if v or k == "observedGeneration"}
        progressed = (
            updated > previous.get("updatedReplicas", 0)
            or ready > previous.get("readyReplicas", 0)
            or available > previous.get("availableReplicas", 0)
            or len(pods) < previous.get("replicas", 0)
        )
        if progressed:
            self._last_progress[uid] = time.monotonic()
        conditions = {c["type"]: c for c in previous.get("conditions") or []}
        min_available = wanted - _resolve_max_unavailable(spec)
        conditions["Available"] = self._condition(
            conditions.get("Available"),
            "Available",
            available >= min_available,
            "MinimumReplicasAvailable"
            if available >= min_available
            else "MinimumReplicasUnavailable",
            "Deployment has minimum availability."
            if available >= min_available
            else "Deployment does not have minimum availability.",
            progressed=False,
        )
        rs_name = current["metadata"]["name"] if current is not None else metadata["name"]
        complete = (
            current is not None
            and updated == wanted
            and available >= wanted
            and len(pods) == wanted
        )
        progressing = self._progressing(
            conditions.get("Progressing"),
            spec,
            uid,
            rs_name,
            complete=complete,
            created=created_replica_set,
            progressed=progressed,
        )
        if progressing is not None:
            conditions["Progressing"] = progressing
        status["conditions"] = [
            conditions[k] for k in ("Available", "Progressing") if k in conditions
        ]
        self._store.modify(
            DEPLOYMENTS, namespace, metadata["name"], set_status(status), subresource="status"
        )
        timed_out = (progressing or {}).get("reason") == "ProgressDeadlineExceeded"
        return complete or timed_out

    def _progressing(
        self,
        existing: KubeObject | None,
        spec: KubeObject,
        uid: str,
        rs_name: str,
        *,
        complete: bool,
        created: bool,
        progressed: bool,
    ) -> KubeObject | None:
        deadline = spec.get("progressDeadlineSeconds")
        if deadline is None:
            return existing
        reason = (existing or {}).get("reason")
        if complete:
            return self._condition(
                existing,
                "Progressing",
                True,
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
                progressed=progressed,
            )
        if created:
            return self._condition(
                existing,
                "Progressing",
                True,
                "NewReplicaSetCreated",
                f'Created new replica set "{rs_name}"',
                progressed=True,
            )
        if progressed:
            return self._condition(
                existing,
                "Progressing",
                True,
                "ReplicaSetUpdated",
                f'ReplicaSet "{rs_name}" is progressing.',
                progressed=True,
            )
        stalled_for = time.monotonic() - self._last_progress.get(uid, time.monotonic())
        finished = reason in ("NewReplicaSetAvailable", "ProgressDeadlineExceeded")
        if existing is not None and not finished and stalled_for > float(deadline):
            return self._condition(
                existing,
                "Progressing",
                False,
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
                progressed=False,
            )
        return existing

    @staticmethod
    def _condition(
        existing: KubeObject | None,
        kind: str,
        ok: bool,
        reason: str,
        message: str,
        *,
        progressed: bool,
    ) -> KubeObject:
        status = "True" if ok else "False"
        now = format_time(utc_now())
        same = existing is not None and existing.get("status") == status
        unchanged = same and existing is not None and existing.get("reason") == reason
        last_update = (existing or {}).get("lastUpdateTime", now)
        return {
            "type": kind,
            "status": status,
            "lastUpdateTime": now if progressed or not unchanged else last_update,
            "lastTransitionTime": (existing or {}).get("lastTransitionTime", now) if same else now,
            "reason": reason,
            "message": message,
        }
