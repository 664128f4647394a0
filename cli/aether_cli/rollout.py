"""Following a deployment until it settles.

What a person sees is a short, ordered progress: ``waiting for the cluster`` →
``rolling out, 1/2 started`` → ``rolled out 2/2, ready``, one live line on a terminal, a
line per change elsewhere. The cluster's own events (a dozen per pod, recorded
with whole-second times and so in no useful order) are logged at debug level only;
Aether's notes (why a deployment waits) at info.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aether_cli.contract import APP_CONTAINER
from aether_cli.errors import EXIT_INTERRUPTED, AetherError

if TYPE_CHECKING:
    from aether_cli.client import ApiClient
    from aether_cli.output import Output
    from aether_cli.progress import Step

TERMINAL_STATUSES = frozenset({"succeeded", "failed"})
CLUSTER_PHASE = "k8s"  # cluster events are recorded as "k8s:<Reason>"
# Aether's own phases: the progress line says what they say.
_PROGRESS_PHASES = frozenset({"pending", "releasing", "rolling_out", "succeeded", "failed"})

# How the platform words a release whose release command failed (its last lines follow).
RELEASE_COMMAND_FAILED = "the release command failed"

_SCALED_UP = re.compile(r"Scaled up replica set (\S+)")
_CREATED_POD = re.compile(r"^ReplicaSet (\S+): Created pod: (\S+)")
_POD = re.compile(r"^Pod (\S+): ")


class DeploymentFailed(AetherError):
    default_code = "deployment_failed"


class WaitTimeout(AetherError):
    default_code = "timeout"


class StoppedFollowing(AetherError):
    """Ctrl-C while following: the rollout itself goes on."""

    exit_code = EXIT_INTERRUPTED
    default_code = "interrupted"


def event_key(event: dict[str, Any]) -> tuple[str, str, str]:
    return (str(event.get("timestamp")), str(event.get("phase")), str(event.get("message")))


@dataclass(frozen=True)
class Cadence:
    """How often the wait loop asks, by how long the rollout has taken so far.

    A redeploy whose dependencies layer its node holds is ready about a second after it is
    applied: each poll that comes a tenth of a second late adds that to the deploy, so the
    first seconds are polled finely. A longer rollout (a new node, an image to pull) is asked
    about less often, backing off to every ``max_interval`` seconds.
    """

    first: float = 0.1  # for the first ``fine_for`` seconds
    fine_for: float = 2.0
    interval: float = 0.25  # then, until ``back_off_after``
    # Once every new pod's app has started, readiness is a probe away.
    started_interval: float = 0.1
    back_off_after: float = 10.0
    max_interval: float = 2.0

    def next(self, interval: float, elapsed: float, *, started: bool) -> float:
        """The wait before the next poll, after one that waited ``interval``."""
        if elapsed > self.back_off_after:
            return min(interval * 1.25, self.max_interval)
        if started:
            return self.started_interval
        return self.first if elapsed < self.fine_for else self.interval


CADENCE = Cadence()


def follow(
    client: ApiClient,
    deployment: dict[str, Any],
    *,
    timeout: float,
    out: Output | None = None,
) -> dict[str, Any]:
    """Poll ``GET /deployments/{id}`` until succeeded (returned) or failed (raised).

    The progress goes to ``out``'s step display.
    """
    from aether_cli.interrupts import deferred
    from aether_cli.output import Output

    deployment_id = str(deployment["deployment_id"])
    view = RolloutView(out or Output())
    current = deployment
    try:
        with deferred() as interrupt, view:
            view.show(current)
            started = time.monotonic()
            deadline = started + timeout
            interval = CADENCE.first
            while current.get("status") not in TERMINAL_STATUSES:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeout(
                        f"deployment {deployment_id} is still {current.get('status')} "
                        f"after {timeout:g}s",
                        hint=f"follow it with `aether status {deployment_id} --follow`",
                    )
                interrupt.wait(min(interval, remaining))
                interrupt.check()
                current = client.get_deployment(deployment_id)
                view.show(current)
                interrupt.check()
                interval = CADENCE.next(
                    interval, time.monotonic() - started, started=all_started(current)
                )
    except KeyboardInterrupt:
        raise StoppedFollowing(
            f"stopped following deployment {deployment_id}; its rollout goes on",
            hint=f"follow it again with `aether status {deployment_id} --follow`",
        ) from None
    if current.get("status") == "failed":
        reason = failure_reason(current)
        version = current.get("version")
        if reason.startswith(RELEASE_COMMAND_FAILED) and version is not None:
            hint = f"see `aether logs --release v{version}`; the previous release keeps serving"
        else:
            hint = f"see `aether logs --deployment {deployment_id}`"
        raise DeploymentFailed(f"deployment {deployment_id} failed: {reason}", hint=hint)
    return current


def failure_reason(deployment: dict[str, Any]) -> str:
    events = deployment.get("events") or []
    return str(deployment.get("reason") or (events[-1].get("message") if events else "unknown"))


class RolloutView:
    """The ordered progress of one rollout, drawn as one step."""

    def __init__(self, out: Output) -> None:
        self._out = out
        self._seen: set[tuple[str, str, str]] = set()
        self._step: Step | None = None

    def __enter__(self) -> RolloutView:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._step is not None:
            self._step.__exit__(exc_type, exc, traceback)

    def show(self, deployment: dict[str, Any]) -> None:
        """Bring the display up to ``deployment``, a fresh ``GET /deployments/{id}``."""
        from aether_cli.log import get_logger

        log = get_logger()
        events = deployment.get("events") or []
        for event in events:
            key = event_key(event)
            if key in self._seen:
                continue
            self._seen.add(key)
            phase = str(event.get("phase") or "")
            if phase.split(":")[0] == CLUSTER_PHASE or phase in _PROGRESS_PHASES:
                log.debug("  %s: %s", phase, event.get("message", ""))
            else:
                log.info("%s", event.get("message", ""))
        status = deployment.get("status")
        wording = progress_wording(deployment)
        if self._step is None:
            if status in TERMINAL_STATUSES:
                return  # settled before we looked: the result says it all
            self._step = self._out.step(wording).__enter__()
        if status == "succeeded":
            self._step.finish(wording)
            self._step.end("done")
        elif status == "failed":
            self._step.end("failed")
        else:
            self._step.update(wording)


def progress_wording(deployment: dict[str, Any]) -> str:
    """Where a rollout stands, in a few words: ``rolling out, 1/2 started``.

    Readiness shows only in the final status, so until then the count is of pods whose
    app has started.
    """
    status = deployment.get("status")
    replicas = int(deployment.get("replicas") or 1)
    if status == "pending":
        return "waiting for the cluster"
    if status == "releasing":
        return "running the release command"
    if status == "succeeded":
        return f"rolled out {replicas}/{replicas}, ready"
    started, restarting = pod_progress(deployment.get("events") or [])
    wording = f"rolling out, {min(started, replicas)}/{replicas} started"
    if restarting:
        wording += f", {restarting} restarting"
    return wording


def all_started(deployment: dict[str, Any]) -> bool:
    """Whether every new pod of a rolling-out deployment has started its app."""
    if deployment.get("status") != "rolling_out":
        return False
    started, _ = pod_progress(deployment.get("events") or [])
    return started >= int(deployment.get("replicas") or 1)


def pod_progress(events: list[dict[str, Any]]) -> tuple[int, int]:
    """How many of the new pods have started their app container, and how many restart.

    The new pods are those of the replica set the rollout scaled up; the old release's
    pods (still serving) are not counted.
    """
    scaled_up: set[str] = set()
    created: dict[str, str] = {}  # pod -> replica set
    started: set[str] = set()
    restarting: set[str] = set()
    for event in events:
        phase = str(event.get("phase") or "")
        message = str(event.get("message") or "")
        if phase == "k8s:ScalingReplicaSet" and (scaled := _SCALED_UP.search(message)):
            scaled_up.add(scaled.group(1))
        elif phase == "k8s:SuccessfulCreate" and (made := _CREATED_POD.match(message)):
            created[made.group(2)] = made.group(1)
        elif pod := _POD.match(message):
            if phase == "k8s:Started" and message.endswith(f"Started container {APP_CONTAINER}"):
                started.add(pod.group(1))
            elif phase == "k8s:BackOff":
                restarting.add(pod.group(1))
    new_pods = {pod for pod, replica_set in created.items() if replica_set in scaled_up}
    if new_pods:
        started &= new_pods
        restarting &= new_pods
    return len(started), len(restarting)
