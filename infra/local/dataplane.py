"""The embedded data plane: pods the simulator creates run as local processes.

``ProcessRuntime`` is a ``PodRuntime`` (``infra/kubesim/runtime.py``). Each pod gets a directory
``<state>/<namespace>/<pod>/`` with its emptyDir volumes under ``volumes/``; container paths
under a volume's mountPath (``AETHER_DEST=/app``, ``workingDir: /app``) are rewritten to the
volume's directory. Init containers run in order, then the main containers, each as its own
process group, with the kubelet's restart and back-off rules. Every pod gets one free loopback
port, handed to its containers as ``PORT`` and probed as the readinessProbe says.

A container's image is what ``infra/local/images.py`` makes of it (``aether-nodejs:24-slim``
is a real Node.js 24, installed once); its program is its ``command`` (and ``args``), or the
image's entrypoint. The environment is the image's, the container's own, and ``PATH`` and
locale of this process, never the rest of it: the stack's AWS credentials stay out of app
processes. ``secretKeyRef`` values come from ``secrets`` and go only into the child's
environment.

Users: when the stack runs as root, every container runs as its ``runAsUser``/``runAsGroup``
(``infra/local/users.py``) and the pod's directories are that user's, so an app cannot read
the stack's private files. Pods' directories must then be reachable by other users: when
``state_dir`` is not (a private directory above it), they live in a directory of their own
under the system's temporary directory instead, and so does the node directory.

An app that never listens on the port it was given but listens on another one is stopped
with the reason ``WrongPort`` and a message naming both ports (``procfs``); waiting would not
make it ready.

Volumes: an emptyDir is a directory of the pod's; when the stack runs as root it belongs to the
pod's user and its ``fsGroup`` (mode 0770), so an init container of another user in that
group (the fetcher when it writes the layer cache) can fill it. A hostPath is a directory of
this "node", ``<pods' root>/.host/<path>``, shared by every pod and kept across pods: type
``DirectoryOrCreate`` makes it (owned by the stack's user, as the kubelet makes it root's)
and ``Directory`` needs it; ``node_directories`` are what the node's own setup provides
before any pod runs (a path and the user it belongs to, mode 0700), as a node image would.

Not modelled: resource limits, the read-only root filesystem and read-only mounts (nothing
mounts: a container path under a mount is rewritten to the volume's directory), volumes
other than emptyDir and hostPath, several ports per pod, liveness and startup probes, exec
probes.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from infra.kubesim import PodStatusSink, PodView, Running, Terminated, Waiting
from infra.local import procfs, users
from infra.local.images import Image, Images, PullError
from infra.local.processes import LOOPBACK, free_port
from infra.local.users import User

# What a child inherits from this process; everything else comes from the image and manifest.
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "TZ")
# The kubelet's FallbackToLogsOnError: the end of the log becomes the termination message.
TERMINATION_MESSAGE_LINES = 80
TERMINATION_MESSAGE_BYTES = 2048
OWNER_FILE = ".pod-uid"  # in a pod's directory: which pod made it
WRONG_PORT = "WrongPort"  # the termination reason of an app listening elsewhere
# Traversable, not listable: other users reach their own pod's directory by name only.
PASSAGE_MODE = 0o711
HOST_ROOT = ".host"  # in the pods' root: the node's own filesystem, for hostPath volumes

# (namespace, secret name) → the Secret's decoded data; raises LookupError with the kubelet's
# message when there is no such Secret.
SecretResolver = Callable[[str, str], Mapping[str, str]]

log = logging.getLogger("aether.dataplane")


@dataclass(frozen=True)
class Timing:
    """How fast pods move. Manifest probe and grace settings are capped by these bounds so a
    local rollout takes seconds, not the minutes a cluster's defaults allow."""

    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    # A container that ran this long before exiting starts its back-off over.
    backoff_reset_after: float = 60.0
    probe_delay_max: float = 1.0
    # Finer than a kubelet's least period (1 s): an app that listens a few hundred
    # milliseconds after its start is ready then, not at the next whole second.
    probe_period_max: float = 0.25
    # Until a container is first ready its probe runs this often: a rollout waits for it.
    probe_period_starting: float = 0.05
    probe_timeout_max: float = 2.0
    grace_period_max: float = 3.0
    poll_interval: float = 0.05
    # How long an unready app may listen on other ports only before it is stopped.
    wrong_port_grace: float = 3.0


class ContainerConfigError(Exception):
    """The container cannot be started as configured (the kubelet's CreateContainerConfigError)."""


@dataclass(frozen=True)
class _Verdict:
    """Why the runtime stopped a container that would never become ready."""

    reason: str
    message: str


@dataclass
class _Pod:
    view: PodView
    sink: PodStatusSink
    directory: Path
    port: int
    owner: User | None  # whose its directories are; None: the stack's own user
    host_volumes: dict[str, Path] = field(default_factory=dict)  # hostPath volume → directory
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    processes: set[subprocess.Popen[bytes]] = field(default_factory=set)
    threads: list[threading.Thread] = field(default_factory=list)

    def alive(self) -> bool:
        return not self.stopping.is_set() and self.sink.active


@dataclass(frozen=True)
class _Probe:
    kind: str  # "http", "tcp" or "none"
    path: str
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int


class ProcessRuntime:
    """Runs each pod's containers as local processes under ``state_dir``.

    ``secrets`` resolves ``secretKeyRef`` and ``envFrom``'s ``secretRef``; it may be set after construction (the simulator that
    holds the Secrets is built around the runtime) but before the first pod starts.
    ``node_dir`` is where Node.js installs go (``aether_cli.nodejs``'s default cache if None).
    """

    def __init__(
        self,
        state_dir: str | Path,
        *,
        secrets: SecretResolver | None = None,
        timing: Timing | None = None,
        node_dir: str | Path | None = None,
        node_directories: Mapping[str, User | None] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.secrets = secrets
        self.timing = timing or Timing()
        self._lock = threading.Lock()
        self._pods: dict[str, _Pod] = {}
        self._workers: list[threading.Thread] = []
        self._closed = False
        self._spare: Path | None = None  # pods' directories when others cannot reach state_dir
        self.pods_root = self.state_dir
        nodes = Path(node_dir).absolute() if node_dir is not None else None
        if users.can_switch_users():
            self.pods_root = self._open_directory(self.state_dir, "pods' files")
            if nodes is not None:
                nodes = self._open_directory(nodes, "Node.js installs", mode=0o755)
        self.images = Images(nodes)
        self.host_root = self.pods_root / HOST_ROOT
        for path, owner in (node_directories or {}).items():
            self._provide(path, owner)

    def _open_directory(self, wanted: Path, what: str, mode: int = PASSAGE_MODE) -> Path:
        """``wanted`` if other users (the pods') can reach it, else a spare directory."""
        wanted.mkdir(parents=True, exist_ok=True)
        wanted.chmod(mode)
        if users.others_can_reach(wanted):
            return wanted
        if self._spare is None:
            self._spare = Path(tempfile.mkdtemp(prefix="aether-pods-"))
            self._spare.chmod(PASSAGE_MODE)
        fallback = self._spare / ".node" if mode != PASSAGE_MODE else self._spare
        fallback.mkdir(exist_ok=True)
        fallback.chmod(mode)
        log.warning(
            "pods run as their own users, who cannot reach %s (a directory above it is "
            "private): %s go to %s instead",
            wanted,
            what,
            fallback,
        )
        return fallback

    def host_directory(self, path: str) -> Path:
        """Where the node's ``path`` (absolute) is on this machine."""
        parts = [part for part in path.split("/") if part not in ("", ".")]
        if ".." in parts or not path.startswith("/"):
            raise ValueError(f"hostPath {path!r} must be an absolute path without '..'")
        return self.host_root.joinpath(*parts)

    def _provide(self, path: str, owner: User | None) -> None:
        """A node directory the node's setup makes: ``owner``'s alone (mode 0700)."""
        directory = self._host_parent(path)
        directory.mkdir(exist_ok=True)
        if owner is not None and users.can_switch_users():
            users.hand_over(directory, owner)
        else:
            directory.chmod(0o700)

    def _host_parent(self, path: str) -> Path:
        """``host_directory(path)``, its parents made and traversable by pods' users."""
        directory = self.host_directory(path)
        for step in reversed([directory.parent, *directory.parent.parents]):
            if step == self.host_root or self.host_root in step.parents:
                step.mkdir(exist_ok=True)
                step.chmod(PASSAGE_MODE)
        return directory

    # -- what the service proxies and tests ask ----------------------------------------------

    def endpoint(self, pod_uid: str) -> int | None:
        """The loopback port of a running pod, or None once it is stopping or unknown."""
        with self._lock:
            pod = self._pods.get(pod_uid)
        return pod.port if pod is not None and pod.alive() else None

    def process_ids(self) -> dict[str, list[int]]:
        """Pod uid → pids of its container processes (each the leader of its own group)."""
        with self._lock:
            pods = list(self._pods.values())
        result: dict[str, list[int]] = {}
        for pod in pods:
            with pod.lock:
                result[pod.view.uid] = sorted(process.pid for process in pod.processes)
        return result

    def pod_directory(self, namespace: str, name: str) -> Path:
        return self.pods_root / namespace / name

    # -- PodRuntime --------------------------------------------------------------------------

    def start_pod(self, pod: PodView, sink: PodStatusSink) -> None:
        directory = self.pod_directory(pod.namespace, pod.name)
        with self._lock:
            if self._closed:
                return
            taken = {other.port for other in self._pods.values()}
            # The kernel may hand out a port again once it is free: a pod that has not bound
            # its port yet must not share it.
            port = next(p for p in iter(free_port, None) if p not in taken)
            record = _Pod(pod, sink, directory, port, users.pod_user(pod.manifest))
            worker = threading.Thread(
                target=self._run_pod, args=(record,), name=f"aether-pod-{pod.name}", daemon=True
            )
            self._pods[pod.uid] = record
            self._workers = [w for w in self._workers if w.is_alive()]
            self._workers.append(worker)
        worker.start()

    def stop_pod(self, pod_uid: str) -> None:
        # The pod's own thread terminates its processes and removes its directory: the
        # kubelet calling here must not wait out a grace period.
        with self._lock:
            pod = self._pods.get(pod_uid)
        if pod is not None:
            pod.stopping.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pods = list(self._pods.values())
            workers = list(self._workers)
        for pod in pods:
            pod.stopping.set()
        deadline = time.monotonic() + self.timing.grace_period_max + 5.0
        for worker in workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
        for pod in pods:  # a worker that did not finish in time: no process may survive
            with pod.lock:
                leftovers = list(pod.processes)
            for process in leftovers:
                _kill_group(process, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=1.0)
        if self._spare is not None:
            shutil.rmtree(self._spare, ignore_errors=True)

    # -- the life of a pod -------------------------------------------------------------------

    def _run_pod(self, pod: _Pod) -> None:
        try:
            try:
                self._prepare(pod)
            except ContainerConfigError as error:  # a volume the node cannot provide
                log.warning("pod %s/%s: %s", pod.view.namespace, pod.view.name, error)
                for container in _container_specs(pod.view.manifest, "initContainers"):
                    pod.sink.report(container["name"], Waiting("ContainerCreating", str(error)))
                return
            for container in _container_specs(pod.view.manifest, "initContainers"):
                if not self._run_init(pod, container):
                    return
            mains = [
                threading.Thread(
                    target=self._run_main_reporting,
                    args=(pod, container),
                    name=f"aether-pod-{pod.view.name}-{container['name']}",
                    daemon=True,
                )
                for container in _container_specs(pod.view.manifest, "containers")
            ]
            for thread in mains:
                thread.start()
            for thread in mains:
                thread.join()
        except Exception as error:
            log.exception("pod %s/%s: runtime failure", pod.view.namespace, pod.view.name)
            for container in _container_specs(pod.view.manifest, "containers"):
                _report_failure(pod, container["name"], error)
        finally:
            # A pod whose containers have finished keeps its directory until it is deleted.
            while pod.sink.active and not pod.stopping.wait(0.2):
                pass
            with self._lock:
                self._pods.pop(pod.view.uid, None)
            if _owner(pod.directory) == pod.view.uid:  # not a namesake's that started since
                shutil.rmtree(pod.directory, ignore_errors=True)
            log.info("pod %s/%s: stopped", pod.view.namespace, pod.view.name)

    def _prepare(self, pod: _Pod) -> None:
        shutil.rmtree(pod.directory, ignore_errors=True)  # a namesake from an earlier run
        pod.directory.mkdir(parents=True)
        (pod.directory / OWNER_FILE).write_text(pod.view.uid)
        if pod.owner is not None:
            for passage in (pod.directory.parent, pod.directory):
                passage.chmod(PASSAGE_MODE)
        owned = [pod.directory / "home", pod.directory / "tmp"]
        shared = [pod.directory / "volumes"]  # the pod's user's and its fsGroup's
        for volume in pod.view.manifest.get("spec", {}).get("volumes") or []:
            if "emptyDir" in volume:
                shared.append(pod.directory / "volumes" / volume["name"])
            elif "hostPath" in volume:
                pod.host_volumes[volume["name"]] = self._host_volume(volume)
            else:
                log.warning(
                    "pod %s: volume %s is neither an emptyDir nor a hostPath; not provided",
                    pod.view.name,
                    volume["name"],
                )
        group = users.fs_group(pod.view.manifest)
        for directory in owned + shared:
            directory.mkdir()
            if pod.owner is None:
                continue
            if directory in shared and group is not None:
                users.hand_over(directory, User(pod.owner.uid, group), mode=0o770)
            else:
                users.hand_over(directory, pod.owner)
        log.info(
            "pod %s/%s: starting on port %d%s",
            pod.view.namespace,
            pod.view.name,
            pod.port,
            f" as uid {pod.owner.uid}" if pod.owner else "",
        )

    def _host_volume(self, volume: Mapping[str, Any]) -> Path:
        """The node directory of a hostPath volume (``ContainerConfigError`` if it cannot be)."""
        source = volume["hostPath"]
        kind = source.get("type") or ""
        try:
            directory = self.host_directory(str(source.get("path", "")))
        except ValueError as error:
            raise ContainerConfigError(str(error)) from None
        if kind == "DirectoryOrCreate" and not directory.exists():
            self._host_parent(str(source["path"])).mkdir(exist_ok=True)
            directory.chmod(0o755)
        elif kind not in ("", "Directory", "DirectoryOrCreate"):
            raise ContainerConfigError(f"hostPath type {kind!r} is not supported here")
        if not directory.is_dir():
            raise ContainerConfigError(
                f'MountVolume.SetUp failed for volume "{volume["name"]}" : hostPath type check '
                f"failed: {source['path']} is not a directory"
            )
        return directory

    def _run_init(self, pod: _Pod, container: Mapping[str, Any]) -> bool:
        """Run an init container until it succeeds; False if the pod stops or gives up first."""
        name = container["name"]
        failures = 0
        while pod.alive():
            outcome = self._run_once(pod, container, probe=None)
            if outcome is None:
                return False
            exit_code, _ = outcome
            if exit_code == 0:
                return True
            if pod.view.restart_policy == "Never":
                return False
            failures += 1
            self._back_off(pod, name, failures)
        return False

    def _run_main_reporting(self, pod: _Pod, container: Mapping[str, Any]) -> None:
        try:
            self._run_main(pod, container)
        except Exception as error:
            log.exception("pod %s: container %s: runtime failure", pod.view.name, container["name"])
            _report_failure(pod, container["name"], error)

    def _run_main(self, pod: _Pod, container: Mapping[str, Any]) -> None:
        name = container["name"]
        probe = _readiness_probe(container, self.timing)
        failures = 0
        while pod.alive():
            outcome = self._run_once(pod, container, probe=probe)
            if outcome is None:
                return
            exit_code, ran_for = outcome
            policy = pod.view.restart_policy
            if policy == "Never" or (policy == "OnFailure" and exit_code == 0):
                return
            failures = 1 if ran_for >= self.timing.backoff_reset_after else failures + 1
            self._back_off(pod, name, failures)

    def _back_off(self, pod: _Pod, container: str, failures: int) -> None:
        """Show the termination for a while, then CrashLoopBackOff until the restart is due."""
        delay = min(self.timing.backoff_initial * 2 ** (failures - 1), self.timing.backoff_max)
        shown = min(delay / 2, 1.0)
        if pod.stopping.wait(shown) or not pod.alive():
            return
        message = (
            f"back-off {delay:g}s restarting failed container={container} "
            f"pod={pod.view.name}_{pod.view.namespace}({pod.view.uid})"
        )
        pod.sink.report(container, Waiting("CrashLoopBackOff", message))
        pod.stopping.wait(delay - shown)

    def _run_once(
        self, pod: _Pod, container: Mapping[str, Any], *, probe: _Probe | None
    ) -> tuple[int, float] | None:
        """Start the container, wait for its exit; (exit code, seconds it ran), None if stopped.

        ``probe`` is given for main containers: their readiness is reported as it changes.
        """
        name = container["name"]
        image = self._pull(pod, container)
        if image is None:
            return None
        while True:  # the kubelet retries a container it cannot configure (a Secret may come)
            try:
                user = self._user(pod, container)
                command, switch = self._command(container, image, user)
                env = self._environment(pod, container, image)
                break
            except ContainerConfigError as error:
                pod.sink.report(name, Waiting("CreateContainerConfigError", str(error)))
            if pod.stopping.wait(self.timing.backoff_initial) or not pod.alive():
                return None
        workdir = self._path_in_pod(pod, container, container.get("workingDir")) or pod.directory
        tail: collections.deque[str] = collections.deque(maxlen=TERMINATION_MESSAGE_LINES)
        started = time.monotonic()
        with pod.lock:
            if not pod.alive():
                return None
            try:
                process = subprocess.Popen(
                    command,
                    cwd=workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    **_as_user(switch),
                )
            except (OSError, ValueError, subprocess.SubprocessError) as error:
                pod.sink.report(name, Running())
                pod.sink.report(name, Terminated(128, "StartError", f"{command[0]}: {error}"))
                return 128, 0.0
            pod.processes.add(process)
        log.info("pod %s: container %s started (pid %d)", pod.view.name, name, process.pid)
        assert process.stdout is not None
        reader = threading.Thread(
            target=_pump,
            args=(process.stdout, lambda line: pod.sink.log(name, line), tail),
            name=f"aether-log-{pod.view.name}-{name}",
            daemon=True,
        )
        reader.start()
        pod.sink.report(name, Running(ready=probe is not None and probe.kind == "none"))
        try:
            outcome = self._supervise(pod, name, process, probe, started)
        finally:
            # Also after a natural exit: a child left behind would hold the port and the log.
            if process.poll() is None or _group_alive(process.pid):
                self._terminate(pod, process)
            reader.join(timeout=2.0)
            with pod.lock:
                pod.processes.discard(process)
        if outcome is None:
            return None
        ran_for = time.monotonic() - started
        if isinstance(outcome, _Verdict):
            exit_code = _exit_code(process.returncode) if process.returncode is not None else 137
            log.info("pod %s: container %s stopped: %s", pod.view.name, name, outcome.message)
            pod.sink.report(name, Terminated(exit_code, outcome.reason, outcome.message))
            return exit_code, ran_for
        exit_code = outcome
        log.info("pod %s: container %s exited with %d", pod.view.name, name, exit_code)
        if exit_code == 0:
            pod.sink.report(name, Terminated(0, "Completed"))
        else:
            message = "\n".join(tail)[-TERMINATION_MESSAGE_BYTES:]
            pod.sink.report(name, Terminated(exit_code, "Error", message))
        return exit_code, ran_for

    def _supervise(
        self,
        pod: _Pod,
        name: str,
        process: subprocess.Popen[bytes],
        probe: _Probe | None,
        started: float,
    ) -> int | _Verdict | None:
        """Wait for the process to exit, probing readiness meanwhile: its exit code, a verdict
        when it can never become ready, None if the pod stops."""
        ready = probe is not None and probe.kind == "none"
        ever_ready = ready
        streak = 0  # consecutive results that disagree with ``ready``
        next_probe = started + (probe.initial_delay if probe else 0.0)
        elsewhere_since: float | None = None  # listening, but never on its own port
        while True:
            if probe is None:
                # Nothing to probe (an init container): wait on the process itself, so that
                # its exit starts the next container at once, not at the next tick.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(self.timing.poll_interval)
            else:
                pod.stopping.wait(self.timing.poll_interval)
            if pod.stopping.is_set() or not pod.sink.active:
                return None
            code = process.poll()
            if code is not None:
                return _exit_code(code)
            if probe is None or probe.kind == "none" or time.monotonic() < next_probe:
                continue
            passed = _probe_once(probe, pod.port)
            now = next_probe = time.monotonic()
            next_probe += (
                probe.period if ever_ready else min(probe.period, self.timing.probe_period_starting)
            )
            streak = streak + 1 if passed != ready else 0
            threshold = probe.failure_threshold if ready else probe.success_threshold
            if streak >= threshold and process.poll() is None:
                ready, streak = passed, 0
                ever_ready |= ready
                pod.sink.report(name, Running(ready=ready))
            if passed or ever_ready:
                elsewhere_since = None
                continue
            ports = procfs.listening_ports(process.pid)
            if not ports or pod.port in ports:
                elsewhere_since = None
                continue
            elsewhere_since = elsewhere_since or now
            if now - elsewhere_since >= self.timing.wrong_port_grace:
                return _Verdict(WRONG_PORT, wrong_port_message(pod.port, ports))

    def _terminate(self, pod: _Pod, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM the container's process group; SIGKILL it after the grace period."""
        spec = pod.view.manifest.get("spec", {})
        grace = min(
            float(spec.get("terminationGracePeriodSeconds", 30)), self.timing.grace_period_max
        )
        _kill_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            process.poll()
            if not _group_alive(process.pid):
                return
            time.sleep(self.timing.poll_interval)
        _kill_group(process, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=2.0)

    # -- what a container runs with ----------------------------------------------------------

    def _pull(self, pod: _Pod, container: Mapping[str, Any]) -> Image | None:
        """The container's image, once it can be had; None if the pod stops first.

        A failed pull is retried with the kubelet's back-off (``ImagePullBackOff``).
        """
        name = container["name"]
        reference = str(container.get("image", ""))
        try:
            user = self._user(pod, container)
        except ContainerConfigError:
            user = None  # reported once the image is here
        failures = 0
        while pod.alive():
            try:
                return self.images.pull(
                    reference,
                    user=user,
                    announce=lambda message: pod.sink.report(
                        name, Waiting("ContainerCreating", message)
                    ),
                )
            except PullError as error:
                if not failures:
                    log.warning("pod %s: container %s: %s", pod.view.name, name, error.message)
                pod.sink.report(name, Waiting(error.reason, error.message))
                failures += 1
                delay = min(
                    self.timing.backoff_initial * 2 ** (failures - 1), self.timing.backoff_max
                )
                if error.reason == "ErrImagePull":
                    if pod.stopping.wait(min(delay / 2, 1.0)) or not pod.alive():
                        return None
                    back_off = f'Back-off pulling image "{reference}": {error.message}'
                    pod.sink.report(name, Waiting("ImagePullBackOff", back_off))
                pod.stopping.wait(delay)
        return None

    @staticmethod
    def _user(pod: _Pod, container: Mapping[str, Any]) -> User | None:
        try:
            return users.container_user(pod.view.manifest, container)
        except ValueError as error:
            raise ContainerConfigError(str(error)) from None

    @staticmethod
    def _command(
        container: Mapping[str, Any], image: Image, user: User | None
    ) -> tuple[list[str], User | None]:
        """The program to start and the user the process must switch to (None: none, or the
        image's entrypoint switches by itself)."""
        command = [str(word) for word in container.get("command") or ()]
        args = [str(word) for word in container.get("args") or ()]
        if command:
            argv, switch = command + args, user
        else:
            entrypoint = image.entrypoint(user)
            if entrypoint is None:
                raise ContainerConfigError(
                    f"container {container['name']}: no command and no local entrypoint for "
                    f"image {image.reference!r}"
                )
            argv, switch = [*entrypoint, *args], None
        if any("\0" in word for word in argv):
            raise ContainerConfigError(
                f"container {container['name']}: its command holds a NUL byte"
            )
        return argv, switch

    def _environment(self, pod: _Pod, container: Mapping[str, Any], image: Image) -> dict[str, str]:
        env = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
        if image.path is not None:
            env["PATH"] = image.path
        for name, value in image.env.items():
            env[name] = str(self._path_in_pod(pod, container, value) or value)
        for source in container.get("envFrom") or []:
            env.update(self._env_from(pod, source))
        for entry in container.get("env") or []:
            env[entry["name"]] = self._env_value(pod, container, entry)
        tmp = self._path_in_pod(pod, container, "/tmp") or pod.directory / "tmp"  # noqa: S108
        env.update(
            HOME=str(pod.directory / "home"),
            TMPDIR=str(tmp),
            PORT=str(pod.port),  # every pod needs its own; the manifest's value is per-cluster
            HOSTNAME=pod.view.name,
        )
        for name, value in env.items():
            if "\0" in name or "\0" in value or "=" in name or not name:
                raise ContainerConfigError(
                    f"env {one_line(name)}: a variable's name and value cannot hold a NUL byte "
                    "(nor its name a '=')"
                )
        return env

    def _env_value(self, pod: _Pod, container: Mapping[str, Any], entry: Mapping[str, Any]) -> str:
        if "value" in entry:
            value = str(entry["value"])
            return str(self._path_in_pod(pod, container, value) or value)
        reference = (entry.get("valueFrom") or {}).get("secretKeyRef")
        if reference is None:
            raise ContainerConfigError(
                f"env {entry['name']}: only value and secretKeyRef are supported"
            )
        data = self._secret(pod, reference["name"], f"env {entry['name']}")
        if reference["key"] not in data:
            raise ContainerConfigError(
                f"couldn't find key {reference['key']} in Secret "
                f"{pod.view.namespace}/{reference['name']}"
            )
        return data[reference["key"]]

    def _env_from(self, pod: _Pod, source: Mapping[str, Any]) -> dict[str, str]:
        """Every key of the referenced Secret, as the kubelet does (only Secrets here)."""
        reference = source.get("secretRef")
        if reference is None or set(source) - {"secretRef", "prefix"}:
            raise ContainerConfigError("envFrom: only secretRef is supported")
        data = self._secret(pod, reference["name"], "envFrom")
        prefix = str(source.get("prefix") or "")
        return {f"{prefix}{name}": value for name, value in data.items()}

    def _secret(self, pod: _Pod, name: str, what: str) -> Mapping[str, str]:
        if self.secrets is None:
            raise ContainerConfigError(f"{what}: no secret store")
        try:
            return self.secrets(pod.view.namespace, name)
        except LookupError as error:
            raise ContainerConfigError(str(error.args[0] if error.args else error)) from None

    def _path_in_pod(
        self, pod: _Pod, container: Mapping[str, Any], path: str | None
    ) -> Path | None:
        """Where a container path lives on this machine, if it is under a volume mount."""
        if not path or not path.startswith("/"):
            return None
        mounts: list[tuple[str, str]] = [
            (str(m["mountPath"]).rstrip("/") or "/", str(m["name"]))
            for m in container.get("volumeMounts") or []
        ]
        for root, volume in sorted(mounts, key=lambda mount: len(mount[0]), reverse=True):
            if path == root or path.startswith(root.rstrip("/") + "/"):
                rest = path[len(root) :].lstrip("/")
                base = pod.host_volumes.get(volume) or pod.directory / "volumes" / volume
                return base / rest if rest else base
        return None


def wrong_port_message(given: int, ports: set[int]) -> str:
    listened = ", ".join(str(port) for port in sorted(ports))
    which = "port" if len(ports) == 1 else "ports"
    return (
        f"the app listens on {which} {listened} but not on port {given}, the one it was "
        "given: Aether passes the port to listen on in the PORT environment variable "
        "(in Node.js, process.env.PORT)"
    )


def one_line(text: str, limit: int = 80) -> str:
    """``text`` made printable and short, for a message."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _report_failure(pod: _Pod, container: str, error: Exception) -> None:
    """A runtime bug must not leave a pod waiting forever: say so in the container's status."""
    message = f"the embedded runtime failed: {type(error).__name__}: {one_line(str(error), 300)}"
    pod.sink.report(container, Waiting("CreateContainerError", message))


def _as_user(user: User | None) -> dict[str, Any]:
    """Popen's arguments that start the process as ``user`` with no supplementary groups."""
    if user is None:
        return {}
    return {"user": user.uid, "group": user.gid, "extra_groups": []}


def _owner(directory: Path) -> str | None:
    try:
        return (directory / OWNER_FILE).read_text()
    except OSError:
        return None


# -- processes ---------------------------------------------------------------------------------


def _pump(stream: IO[bytes], emit: Callable[[str], None], tail: collections.deque[str]) -> None:
    """Each output line to ``emit`` (a container's log), the last ones kept in ``tail``."""
    with stream:
        while raw := stream.readline(65536):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            tail.append(line)
            emit(line)


def _exit_code(returncode: int) -> int:
    """Popen's -N for "killed by signal N" is 128+N in a container's status."""
    return 128 - returncode if returncode < 0 else returncode


def _kill_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs. Zombies do not count: an orphan waits for
    init to reap it, and some inits (in containers, sandboxes) never do."""
    if not procfs.PROC.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    return bool(procfs.group_members(pgid))


# -- readiness -------------------------------------------------------------------------------


def _container_specs(manifest: Mapping[str, Any], key: str) -> Sequence[Mapping[str, Any]]:
    specs: Sequence[Mapping[str, Any]] = (manifest.get("spec") or {}).get(key) or []
    return specs


def _readiness_probe(container: Mapping[str, Any], timing: Timing) -> _Probe:
    spec = container.get("readinessProbe")
    if not spec:
        return _Probe("none", "", 0.0, 0.0, 0.0, 1, 1)
    kind = "http" if "httpGet" in spec else "tcp" if "tcpSocket" in spec else "unsupported"
    if kind == "unsupported":
        log.warning(
            "container %s: only httpGet and tcpSocket probes run; never ready", container["name"]
        )
    path = str((spec.get("httpGet") or {}).get("path") or "/")
    return _Probe(
        kind=kind,
        path=path if path.startswith("/") else f"/{path}",
        initial_delay=min(float(spec.get("initialDelaySeconds", 0)), timing.probe_delay_max),
        period=min(float(spec.get("periodSeconds", 10)), timing.probe_period_max),
        timeout=min(float(spec.get("timeoutSeconds", 1)), timing.probe_timeout_max),
        success_threshold=max(int(spec.get("successThreshold", 1)), 1),
        failure_threshold=max(int(spec.get("failureThreshold", 3)), 1),
    )


def _probe_once(probe: _Probe, port: int) -> bool:
    """One probe against the pod's port: every probe's port (named or numbered) is the pod's one."""
    try:
        if probe.kind == "tcp":
            with socket.create_connection((LOOPBACK, port), timeout=probe.timeout):
                return True
        if probe.kind == "http":
            connection = http.client.HTTPConnection(LOOPBACK, port, timeout=probe.timeout)
            try:
                connection.request("GET", probe.path, headers={"User-Agent": "kube-probe/1.30"})
                status = connection.getresponse().status
            finally:
                connection.close()
            return 200 <= status < 400
    except (OSError, http.client.HTTPException):
        return False
    return False
