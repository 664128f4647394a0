"""The node: hands new pods to a ``PodRuntime`` and turns its reports into pod status and logs."""

from __future__ import annotations

import ipaddress
import queue
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from infra.kubesim.api_errors import ApiError, bad_request
from infra.kubesim.clock import format_time, utc_now
from infra.kubesim.events import NODE_NAME, EventRecorder
from infra.kubesim.logs import LogBook
from infra.kubesim.resources import PODS, REPLICA_SETS, KubeObject
from infra.kubesim.runtime import (
    ContainerState,
    PodRuntime,
    PodView,
    Running,
    Terminated,
    Waiting,
)
from infra.kubesim.store import Store, WatchEvent

_COMPONENT = "kubelet"
_NODE_IP = "192.168.49.2"
_POD_NETWORK = ipaddress.ip_network("10.244.0.0/16")


@dataclass
class _Container:
    name: str
    image: str
    is_init: bool
    state: ContainerState
    ever_started: bool = False
    restart_count: int = 0
    container_id: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # The most recent termination once the container has left it (shown as lastState).
    last_termination: dict[str, Any] | None = None

    @property
    def ready(self) -> bool:
        if self.is_init:
            return isinstance(self.state, Terminated) and self.state.exit_code == 0
        return isinstance(self.state, Running) and self.state.ready

    def termination(self) -> dict[str, Any]:
        assert isinstance(self.state, Terminated)
        terminated: dict[str, Any] = {
            "exitCode": self.state.exit_code,
            "reason": self.state.reason or ("Completed" if self.state.exit_code == 0 else "Error"),
            "startedAt": format_time(self.started_at or utc_now()),
            "finishedAt": format_time(self.finished_at or utc_now()),
            "containerID": self.container_id,
        }
        if self.state.message:
            terminated["message"] = self.state.message
        return terminated

    def to_status(self) -> dict[str, Any]:
        state: dict[str, Any]
        if isinstance(self.state, Waiting):
            waiting = {"reason": self.state.reason}
            if self.state.message:
                waiting["message"] = self.state.message
            state = {"waiting": waiting}
        elif isinstance(self.state, Running):
            state = {"running": {"startedAt": format_time(self.started_at or utc_now())}}
        else:
            state = {"terminated": self.termination()}
        status: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": f"sim://{self.image}",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": isinstance(self.state, Running),
            "state": state,
            "lastState": {"terminated": self.last_termination} if self.last_termination else {},
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


@dataclass
class _Pod:
    namespace: str
    name: str
    uid: str
    restart_policy: str
    containers: dict[str, _Container]
    pod_ip: str
    start_time: datetime
    condition_times: dict[str, tuple[str, str]] = field(default_factory=dict)

    def _condition(self, kind: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
        status = "True" if ok else "False"
        previous = self.condition_times.get(kind)
        since = previous[1] if previous and previous[0] == status else format_time(utc_now())
        self.condition_times[kind] = (status, since)
        condition = {"type": kind, "status": status, "lastTransitionTime": since}
        if not ok:
            condition.update(reason=reason, message=message)
        return condition

    def to_status(self) -> dict[str, Any]:
        init = [c for c in self.containers.values() if c.is_init]
        main = [c for c in self.containers.values() if not c.is_init]
        pending_init = [c.name for c in init if not c.ready]
        unready = [c.name for c in main if not c.ready]
        init_failed = self.restart_policy == "Never" and any(
            isinstance(c.state, Terminated) and c.state.exit_code for c in init
        )
        if init_failed:
            phase = "Failed"  # never retried: the main containers will never start
        elif self.restart_policy != "Always" and all(isinstance(c.state, Terminated) for c in main):
            failed = any(isinstance(c.state, Terminated) and c.state.exit_code for c in main)
            phase = "Failed" if failed else "Succeeded"
        elif any(c.ever_started for c in main):
            phase = "Running"
        else:
            phase = "Pending"
        conditions = [
            self._condition(
                "Initialized",
                not pending_init,
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(pending_init)}]",
            ),
            self._condition(
                "Ready",
                not unready,
                "ContainersNotReady",
                f"containers with unready status: [{' '.join(unready)}]",
            ),
            self._condition(
                "ContainersReady",
                not unready,
                "ContainersNotReady",
                f"containers with unready status: [{' '.join(unready)}]",
            ),
            self._condition("PodScheduled", True, "", ""),
        ]
        status: dict[str, Any] = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": _NODE_IP,
            "hostIPs": [{"ip": _NODE_IP}],
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": format_time(self.start_time),
            "containerStatuses": [c.to_status() for c in main],
        }
        if init:
            status["initContainerStatuses"] = [c.to_status() for c in init]
        return status


class _Sink:
    """The ``PodStatusSink`` the kubelet gives a runtime for one pod."""

    def __init__(self, kubelet: Kubelet, pod_uid: str) -> None:
        self._kubelet = kubelet
        self._pod_uid = pod_uid

    @property
    def active(self) -> bool:
        return self._kubelet.is_running(self._pod_uid)

    def report(self, container: str, state: ContainerState) -> None:
        self._kubelet.report(self._pod_uid, container, state)

    def log(self, container: str, line: str) -> None:
        if self.active:
            self._kubelet.logs.append(self._pod_uid, container, line)


class Kubelet:
    """Runs every pod on one simulated node, ``aether-sim-node``."""

    def __init__(
        self, store: Store, runtime: PodRuntime, logs: LogBook, events: EventRecorder
    ) -> None:
        self._store = store
        self._runtime = runtime
        self.logs = logs
        self._events = events
        self._lock = threading.RLock()
        self._pods: dict[str, _Pod] = {}
        self._next_host = 2
        self._changes: queue.Queue[WatchEvent | None] = queue.Queue()
        store.subscribe(self._on_change)
        self._thread = threading.Thread(target=self._run, name="kubesim-kubelet", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._changes.put(None)
        self._thread.join(timeout=5)
        self._runtime.close()

    def is_running(self, pod_uid: str) -> bool:
        with self._lock:
            return pod_uid in self._pods

    # -- pod lifecycle -----------------------------------------------------------------------

    def _on_change(self, event: WatchEvent) -> None:
        if event.kind is PODS and event.type in ("ADDED", "DELETED"):
            self._changes.put(event)

    def _run(self) -> None:
        while (event := self._changes.get()) is not None:
            if event.type == "ADDED":
                self._start(event.object)
            else:
                self._stop(event.object)

    def _start(self, pod: KubeObject) -> None:
        metadata, spec = pod["metadata"], pod["spec"]
        has_init = bool(spec.get("initContainers"))
        containers = {
            c["name"]: _Container(c["name"], c["image"], True, Waiting("PodInitializing"))
            for c in spec.get("initContainers") or []
        }
        waiting = Waiting("PodInitializing" if has_init else "ContainerCreating")
        for c in spec["containers"]:
            containers[c["name"]] = _Container(c["name"], c["image"], False, waiting)
        with self._lock:
            pod_ip = str(_POD_NETWORK.network_address + self._next_host)
            self._next_host += 1
            record = _Pod(
                metadata["namespace"],
                metadata["name"],
                metadata["uid"],
                spec.get("restartPolicy", "Always"),
                containers,
                pod_ip,
                utc_now(),
            )
            self._pods[record.uid] = record
            if not self._write_status(record, node_name=NODE_NAME):
                del self._pods[record.uid]
                return
        self._record_event(
            record,
            "Normal",
            "Scheduled",
            f"Successfully assigned {record.namespace}/{record.name} to {NODE_NAME}",
            "default-scheduler",
        )
        view = PodView.from_pod(pod, self._owning_deployment(pod))
        self._runtime.start_pod(view, _Sink(self, record.uid))

    def _stop(self, pod: KubeObject) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            known = self._pods.pop(uid, None) is not None
        if known:
            self._runtime.stop_pod(uid)
        self.logs.forget(uid)

    def _owning_deployment(self, pod: KubeObject) -> str | None:
        namespace = pod["metadata"]["namespace"]
        for reference in pod["metadata"].get("ownerReferences") or []:
            if reference.get("kind") != "ReplicaSet":
                continue
            replica_set = self._store.find(REPLICA_SETS, namespace, reference["name"])
            for owner in (replica_set or {}).get("metadata", {}).get("ownerReferences") or []:
                if owner.get("kind") == "Deployment":
                    return str(owner["name"])
        return None

    # -- reports from the runtime ------------------------------------------------------------

    def report(self, pod_uid: str, container_name: str, state: ContainerState) -> None:
        with self._lock:
            record = self._pods.get(pod_uid)
            container = record.containers.get(container_name) if record else None
            if record is None or container is None or container.state == state:
                return
            now = utc_now()
            events: list[tuple[str, str, str]] = []
            if isinstance(container.state, Terminated):
                container.last_termination = container.termination()
            if isinstance(state, Running) and not isinstance(container.state, Running):
                if container.ever_started:
                    container.restart_count += 1
                    self.logs.start_new_instance(pod_uid, container_name)
                container.ever_started = True
                container.started_at = now
                container.container_id = f"sim://{secrets.token_hex(16)}"
                events += [
                    ("Normal", "Pulled", f'Container image "{container.image}" already present'),
                    ("Normal", "Created", f"Created container: {container_name}"),
                    ("Normal", "Started", f"Started container {container_name}"),
                ]
            elif isinstance(state, Terminated):
                container.finished_at = now
            elif isinstance(state, Waiting) and state.reason == "CrashLoopBackOff":
                events.append(
                    (
                        "Warning",
                        "BackOff",
                        f"Back-off restarting failed container {container_name} in pod "
                        f"{record.name}_{record.namespace}({record.uid})",
                    )
                )
            container.state = state
            if not self._write_status(record):
                return
        for event_type, reason, message in events:
            self._record_event(record, event_type, reason, message, _COMPONENT)

    def _write_status(self, record: _Pod, *, node_name: str | None = None) -> bool:
        """Store the pod's status; False if the pod is gone (or replaced by a namesake)."""
        status = record.to_status()

        def change(pod: KubeObject) -> KubeObject:
            if pod["metadata"]["uid"] == record.uid:
                pod["status"] = status
                if node_name is not None:
                    pod["spec"]["nodeName"] = node_name
            return pod

        try:
            # The node name is spec, so the first write goes through the main resource.
            subresource = None if node_name is not None else "status"
            self._store.modify(PODS, record.namespace, record.name, change, subresource=subresource)
            if node_name is not None:
                self._store.modify(
                    PODS, record.namespace, record.name, change, subresource="status"
                )
        except ApiError:
            return False
        return True

    def _record_event(
        self, record: _Pod, event_type: str, reason: str, message: str, component: str
    ) -> None:
        pod = self._store.find(PODS, record.namespace, record.name)
        if pod is not None and pod["metadata"]["uid"] == record.uid:
            self._events.record(pod, event_type, reason, message, component)

    # -- logs --------------------------------------------------------------------------------

    def log_source(
        self, namespace: str, pod_name: str, container: str | None, *, previous: bool
    ) -> tuple[str, str]:
        """The pod uid and container a log request reads, or the error a kubelet answers."""
        pod = self._store.get(PODS, namespace, pod_name)
        spec = pod["spec"]
        main = [c["name"] for c in spec["containers"]]
        init = [c["name"] for c in spec.get("initContainers") or []]
        if container is None:
            if len(main) != 1:
                raise bad_request(
                    f"a container name must be specified for pod {pod_name}, choose one of: "
                    f"[{' '.join(main)}] or one of the init containers: [{' '.join(init)}]"
                )
            container = main[0]
        if container not in main + init:
            raise bad_request(f"container {container} is not valid for pod {pod_name}")
        uid = pod["metadata"]["uid"]
        if previous:
            if not self.logs.has_previous(uid, container):
                raise bad_request(
                    f'previous terminated container "{container}" in pod "{pod_name}" not found'
                )
            return uid, container
        with self._lock:
            record = self._pods.get(uid)
            state = record.containers[container] if record else None
        if state is None or not state.ever_started:
            reason = state.state.reason if state and isinstance(state.state, Waiting) else ""
            raise bad_request(
                f'container "{container}" in pod "{pod_name}" is waiting to start: '
                f"{reason or 'ContainerCreating'}"
            )
        return uid, container

    def is_streaming(self, pod_uid: str, container: str) -> bool:
        """Whether a followed log can still grow: the container instance has not ended."""
        with self._lock:
            record = self._pods.get(pod_uid)
            state = record.containers.get(container) if record else None
            return state is not None and not isinstance(state.state, Terminated)
