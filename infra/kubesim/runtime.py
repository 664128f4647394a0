"""How pods run: the ``PodRuntime`` protocol, and the default ``SimulatedRuntime``.

The kubelet hands each new pod to a runtime together with a ``PodStatusSink``. The runtime
starts the containers however it likes and reports back through the sink, from any thread and
at any later time: container states (the kubelet derives phase, conditions, restart counts and
``lastState`` from them) and log lines. A runtime never touches the API objects itself.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from infra.kubesim.selectors import LabelRequirement, parse_label_selector


@dataclass(frozen=True)
class ContainerView:
    name: str
    image: str
    command: tuple[str, ...]
    args: tuple[str, ...]
    # Literal env values only; valueFrom references are not resolved.
    env: Mapping[str, str]
    working_dir: str | None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> ContainerView:
        return cls(
            name=spec["name"],
            image=spec.get("image", ""),
            command=tuple(spec.get("command") or ()),
            args=tuple(spec.get("args") or ()),
            env={e["name"]: e["value"] for e in spec.get("env") or [] if "value" in e},
            working_dir=spec.get("workingDir"),
        )


@dataclass(frozen=True)
class PodView:
    """What a runtime gets to know about a pod; ``manifest`` is the whole object as created."""

    namespace: str
    name: str
    uid: str
    labels: Mapping[str, str]
    restart_policy: str
    init_containers: tuple[ContainerView, ...]
    containers: tuple[ContainerView, ...]
    # The Deployment that (through its ReplicaSet) owns the pod, if any.
    deployment: str | None
    manifest: Mapping[str, Any]

    @classmethod
    def from_pod(cls, pod: Mapping[str, Any], deployment: str | None) -> PodView:
        spec = pod.get("spec") or {}
        return cls(
            namespace=pod["metadata"]["namespace"],
            name=pod["metadata"]["name"],
            uid=pod["metadata"]["uid"],
            labels=dict(pod["metadata"].get("labels") or {}),
            restart_policy=spec.get("restartPolicy", "Always"),
            init_containers=tuple(
                ContainerView.from_spec(c) for c in spec.get("initContainers") or []
            ),
            containers=tuple(ContainerView.from_spec(c) for c in spec.get("containers") or []),
            deployment=deployment,
            manifest=pod,
        )


@dataclass(frozen=True)
class Waiting:
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Running:
    ready: bool = False


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str = ""
    message: str = ""


ContainerState = Waiting | Running | Terminated


class PodStatusSink(Protocol):
    """Where a runtime reports one pod's progress. Thread-safe; calls after deletion are no-ops.

    Reporting ``Running`` for a container that had ``Terminated`` counts as a restart: the
    kubelet increments restartCount, keeps the termination as ``lastState`` and starts a new
    log (the old one stays readable with ``previous=true``).
    """

    @property
    def active(self) -> bool:
        """False once the pod is gone; a runtime stops its work for the pod then."""
        ...

    def report(self, container: str, state: ContainerState) -> None: ...

    def log(self, container: str, line: str) -> None: ...


class PodRuntime(Protocol):
    def start_pod(self, pod: PodView, sink: PodStatusSink) -> None:
        """Begin running ``pod``; return promptly and report through ``sink`` as things happen."""
        ...

    def stop_pod(self, pod_uid: str) -> None:
        """The pod was deleted: stop its containers."""
        ...

    def close(self) -> None:
        """The simulator is stopping: stop every pod."""
        ...


class Fault(enum.Enum):
    CRASH_LOOP = "crash-loop"
    INIT_FAILURE = "init-failure"
    NEVER_READY = "never-ready"


@dataclass(frozen=True)
class FaultRule:
    """A scripted failure for the pods it selects (all of them if no selector is set)."""

    fault: Fault
    namespace: str | None = None
    deployment: str | None = None
    label_selector: str | None = None
    _requirements: tuple[LabelRequirement, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        requirements = parse_label_selector(self.label_selector or "")
        object.__setattr__(self, "_requirements", tuple(requirements))

    def matches(self, pod: PodView) -> bool:
        return (
            (self.namespace is None or self.namespace == pod.namespace)
            and (self.deployment is None or self.deployment == pod.deployment)
            and all(requirement.matches(pod.labels) for requirement in self._requirements)
        )


class _Timeline:
    """One thread running callbacks at their due time, so simulated pods need no thread each."""

    def __init__(self) -> None:
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._sequence = itertools.count()
        self._wakeup = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="kubesim-runtime", daemon=True)
        self._thread.start()

    def schedule(self, delay: float, callback: Callable[[], None]) -> None:
        with self._wakeup:
            heapq.heappush(self._queue, (time.monotonic() + delay, next(self._sequence), callback))
            self._wakeup.notify()

    def close(self) -> None:
        with self._wakeup:
            self._closed = True
            self._wakeup.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._closed and (
                    not self._queue or self._queue[0][0] > time.monotonic()
                ):
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._wakeup.wait(timeout)
                if self._closed:
                    return
                _, _, callback = heapq.heappop(self._queue)
            callback()


@dataclass
class _SimulatedPod:
    view: PodView
    sink: PodStatusSink
    stopped: bool = False
    failures: dict[str, int] = field(default_factory=dict)


class SimulatedRuntime:
    """Pods that pass their init containers and become ready after short delays; a pod that
    does not restart always (a Job's) exits 0 instead, unless a fault says otherwise
    (``crash-loop``: exit 1; ``never-ready``: it runs until deleted).

    Scripted faults (``add_fault``) are consulted at every step, so adding or clearing one
    also affects pods that are already running.
    """

    def __init__(
        self,
        *,
        step_delay: float = 0.05,
        backoff_initial: float = 0.1,
        backoff_max: float = 1.0,
        health_check_interval: float = 0.1,
    ) -> None:
        self._step_delay = step_delay
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._health_check_interval = health_check_interval
        self._timeline = _Timeline()
        self._lock = threading.Lock()
        self._pods: dict[str, _SimulatedPod] = {}
        self._faults: list[FaultRule] = []

    # -- fault hooks -------------------------------------------------------------------------

    def add_fault(self, rule: FaultRule) -> None:
        with self._lock:
            self._faults.append(rule)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _fault_for(self, pod: _SimulatedPod) -> Fault | None:
        with self._lock:
            return next((r.fault for r in self._faults if r.matches(pod.view)), None)

    # -- PodRuntime --------------------------------------------------------------------------

    def start_pod(self, pod: PodView, sink: PodStatusSink) -> None:
        simulated = _SimulatedPod(pod, sink)
        with self._lock:
            self._pods[pod.uid] = simulated
        self._timeline.schedule(self._step_delay, lambda: self._start_init(simulated, 0))

    def stop_pod(self, pod_uid: str) -> None:
        with self._lock:
            simulated = self._pods.pop(pod_uid, None)
        if simulated is not None:
            simulated.stopped = True

    def close(self) -> None:
        with self._lock:
            for simulated in self._pods.values():
                simulated.stopped = True
            self._pods.clear()
        self._timeline.close()

    # -- the life of a simulated pod ---------------------------------------------------------

    def _alive(self, pod: _SimulatedPod) -> bool:
        return not pod.stopped and pod.sink.active

    def _after(self, pod: _SimulatedPod, delay: float, step: Callable[[], None]) -> None:
        def guarded() -> None:
            if self._alive(pod):
                step()

        self._timeline.schedule(delay, guarded)

    def _start_init(self, pod: _SimulatedPod, index: int) -> None:
        if index == len(pod.view.init_containers):
            for container in pod.view.containers:
                self._start_container(pod, container)
            return
        container = pod.view.init_containers[index]
        pod.sink.report(container.name, Running())
        pod.sink.log(container.name, f"init container {container.name} started ({container.image})")
        self._after(pod, self._step_delay, lambda: self._finish_init(pod, index))

    def _finish_init(self, pod: _SimulatedPod, index: int) -> None:
        container = pod.view.init_containers[index]
        if self._fault_for(pod) is Fault.INIT_FAILURE:
            pod.sink.log(container.name, "error: simulated init container failure")
            if pod.view.restart_policy == "Never":
                pod.sink.report(container.name, Terminated(1, "Error"))
                return
            self._crash(pod, container.name, lambda: self._start_init(pod, index))
            return
        pod.sink.log(container.name, f"init container {container.name} completed")
        pod.sink.report(container.name, Terminated(0, "Completed"))
        self._after(pod, self._step_delay, lambda: self._start_init(pod, index + 1))

    def _start_container(self, pod: _SimulatedPod, container: ContainerView) -> None:
        pod.sink.report(container.name, Running(ready=False))
        pod.sink.log(container.name, f"container {container.name} started ({container.image})")
        self._after(pod, self._step_delay, lambda: self._check_health(pod, container))

    def _check_health(self, pod: _SimulatedPod, container: ContainerView) -> None:
        fault = self._fault_for(pod)
        if fault is Fault.CRASH_LOOP:
            said = "error: simulated crash, exiting with code 1"
            pod.sink.log(container.name, said)
            if pod.view.restart_policy == "Never":
                # What FallbackToLogsOnError makes of the log's end.
                pod.sink.report(container.name, Terminated(1, "Error", said))
                return
            self._crash(pod, container.name, lambda: self._start_container(pod, container))
            return
        if pod.view.restart_policy != "Always" and fault is not Fault.NEVER_READY:
            # A pod that runs to completion (a Job's): its program has done its work.
            pod.sink.log(container.name, f"container {container.name} completed")
            pod.sink.report(container.name, Terminated(0, "Completed"))
            return
        pod.sink.report(container.name, Running(ready=fault is not Fault.NEVER_READY))
        self._after(pod, self._health_check_interval, lambda: self._check_health(pod, container))

    def _crash(self, pod: _SimulatedPod, container: str, restart: Callable[[], None]) -> None:
        """Exit with an error, wait in CrashLoopBackOff, then restart with a doubled back-off."""
        failures = pod.failures.get(container, 0)
        pod.failures[container] = failures + 1
        backoff = min(self._backoff_initial * 2**failures, self._backoff_max)
        pod.sink.report(container, Terminated(1, "Error"))

        def back_off() -> None:
            message = f"back-off {backoff:g}s restarting failed container={container}"
            pod.sink.report(container, Waiting("CrashLoopBackOff", message))
            self._after(pod, backoff, restart)

        self._after(pod, self._step_delay, back_off)
