"""The simulator as a whole: wiring, lifecycle, kubeconfig, and the hooks tests script it with."""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from infra.kubesim.api_errors import ApiError, bad_request
from infra.kubesim.controller import WorkloadController
from infra.kubesim.events import EventRecorder
from infra.kubesim.jobs import JobController
from infra.kubesim.kubelet import Kubelet
from infra.kubesim.logs import LogBook
from infra.kubesim.resources import PODS
from infra.kubesim.runtime import Fault, FaultRule, PodRuntime, SimulatedRuntime
from infra.kubesim.server import ApiServer
from infra.kubesim.store import Store

CONTEXT_NAME = "aether-sim"


class Simulator:
    """A Kubernetes API simulator listening on 127.0.0.1, serving from a background thread.

    ``runtime`` decides how pods run; the default ``SimulatedRuntime`` makes them ready after a
    few tens of milliseconds and is the one the fault hooks script. ``token`` is the bearer
    token every API request must carry (a random one by default, written to the kubeconfig).
    ``http_hooks=False`` keeps the test hooks off HTTP (a stack other users share: anyone on
    the machine could reach them); the methods stay.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        runtime: PodRuntime | None = None,
        token: str | None = None,
        resync_interval: float = 0.1,
        http_hooks: bool = True,
    ) -> None:
        self.token = token or secrets.token_urlsafe(32)
        self.http_hooks = http_hooks
        self.api_down = False
        self.store = Store()
        self.logs = LogBook()
        self.events = EventRecorder(self.store)
        self.runtime: PodRuntime = runtime if runtime is not None else SimulatedRuntime()
        self.kubelet = Kubelet(self.store, self.runtime, self.logs, self.events)
        self.controller = WorkloadController(self.store, self.events, resync_interval)
        self.jobs = JobController(self.store, self.events, resync_interval)
        self._server = ApiServer(("127.0.0.1", port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # how long stop() waits for the loop to notice
            name="kubesim-http",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.store.close()
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join(timeout=5)
        self.controller.stop()
        self.jobs.stop()
        self.kubelet.stop()

    def __enter__(self) -> Simulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def write_kubeconfig(self, path: str | Path, *, namespace: str = "default") -> Path:
        """Write a kubeconfig (context ``aether-sim``, plain http, a bearer token) and return it.

        It holds the token, so it is readable by its owner only, from its creation (written
        under a temporary name with mode 0600, then renamed over any previous one).
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = f"""apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT_NAME}
  cluster:
    server: {self.url}
users:
- name: {CONTEXT_NAME}
  user:
    token: {self.token}
contexts:
- name: {CONTEXT_NAME}
  context:
    cluster: {CONTEXT_NAME}
    user: {CONTEXT_NAME}
    namespace: {namespace}
current-context: {CONTEXT_NAME}
preferences: {{}}
"""
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(text)
            temporary.replace(target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return target

    # -- hooks -------------------------------------------------------------------------------

    def set_api_down(self, down: bool = True) -> None:
        """While down, every API request answers 503 ServiceUnavailable and open watches end."""
        self.api_down = down
        if down:
            self.store.wake_watchers()

    def add_fault(
        self,
        fault: Fault,
        *,
        namespace: str | None = None,
        deployment: str | None = None,
        label_selector: str | None = None,
    ) -> None:
        """Script a failure for the pods selected (running ones too, from their next step)."""
        self._simulated_runtime().add_fault(FaultRule(fault, namespace, deployment, label_selector))

    def crash_loop(
        self, namespace: str, deployment: str | None = None, *, label_selector: str | None = None
    ) -> None:
        self.add_fault(
            Fault.CRASH_LOOP,
            namespace=namespace,
            deployment=deployment,
            label_selector=label_selector,
        )

    def fail_init_containers(
        self, namespace: str, deployment: str | None = None, *, label_selector: str | None = None
    ) -> None:
        self.add_fault(
            Fault.INIT_FAILURE,
            namespace=namespace,
            deployment=deployment,
            label_selector=label_selector,
        )

    def never_ready(
        self, namespace: str, deployment: str | None = None, *, label_selector: str | None = None
    ) -> None:
        self.add_fault(
            Fault.NEVER_READY,
            namespace=namespace,
            deployment=deployment,
            label_selector=label_selector,
        )

    def clear_faults(self) -> None:
        self._simulated_runtime().clear_faults()

    def append_log(
        self, namespace: str, pod: str, lines: list[str], *, container: str | None = None
    ) -> None:
        """Append lines to a container's current log, as if the program had printed them."""
        spec = self.store.get(PODS, namespace, pod)
        names = [c["name"] for c in spec["spec"]["containers"]]
        names += [c["name"] for c in spec["spec"].get("initContainers") or []]
        target = container or names[0]
        if target not in names:
            raise bad_request(f"container {target} is not valid for pod {pod}")
        for line in lines:
            self.logs.append(spec["metadata"]["uid"], target, line)

    def expire_watch_history(self) -> None:
        """Forget the change history, so watches from an older resourceVersion get 410."""
        self.store.compact()

    def reset(self) -> None:
        """Back to a fresh cluster: API up, no faults, only the initial namespaces."""
        self.api_down = False
        if isinstance(self.runtime, SimulatedRuntime):
            self.runtime.clear_faults()
        self.store.delete_all()
        self.events.forget()

    def _simulated_runtime(self) -> SimulatedRuntime:
        if not isinstance(self.runtime, SimulatedRuntime):
            raise TypeError("fault hooks script the SimulatedRuntime; this simulator runs another")
        return self.runtime

    def handle_control(self, method: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The HTTP control surface under ``/_sim/`` (see the package docstring)."""
        if (method, path) == ("GET", "state"):
            return {
                "apiDown": self.api_down,
                "resourceVersion": str(self.store.revision),
                "url": self.url,
            }
        if (method, path) == ("POST", "reset"):
            self.reset()
        elif (method, path) == ("POST", "api-down"):
            self.set_api_down(True)
        elif (method, path) == ("POST", "api-up"):
            self.set_api_down(False)
        elif (method, path) == ("POST", "faults"):
            try:
                fault = Fault(payload.get("fault"))
            except ValueError:
                raise bad_request(f"fault must be one of {[f.value for f in Fault]}") from None
            self.add_fault(
                fault,
                namespace=payload.get("namespace"),
                deployment=payload.get("deployment"),
                label_selector=payload.get("labelSelector"),
            )
        elif (method, path) == ("DELETE", "faults"):
            self.clear_faults()
        elif (method, path) == ("POST", "logs"):
            if not payload.get("namespace") or not payload.get("pod"):
                raise bad_request("the logs hook needs namespace, pod and lines")
            self.append_log(
                payload["namespace"],
                payload["pod"],
                [str(line) for line in payload.get("lines") or []],
                container=payload.get("container"),
            )
        elif (method, path) == ("POST", "expire-watch-history"):
            self.expire_watch_history()
        else:
            raise ApiError(404, "NotFound", f"no simulator hook {method} /_sim/{path}")
        return {"ok": True}


def start_simulator(port: int = 0, *, runtime: PodRuntime | None = None) -> Simulator:
    """Start a simulator on 127.0.0.1 (``port=0``: an ephemeral port) in a background thread."""
    return Simulator(port, runtime=runtime)
