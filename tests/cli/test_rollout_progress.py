"""What the CLI reads from a deployment's events while it follows a rollout, and how often it
asks."""

from __future__ import annotations

from typing import Any

from aether_cli.rollout import Cadence, all_started, pod_progress, progress_wording


def event(phase: str, message: str) -> dict[str, Any]:
    return {"phase": phase, "message": message, "timestamp": "2026-12-03T08:00:00Z"}


SCALED_UP = event(
    "k8s:ScalingReplicaSet", "Deployment web: Scaled up replica set web-new from 0 to 2"
)
CREATED = [
    event("k8s:SuccessfulCreate", f"ReplicaSet web-new: Created pod: web-new-{name}")
    for name in ("a", "b")
]
OLD_POD_STARTED = event("k8s:Started", "Pod web-old-x: Started container app")


def started(pod: str) -> dict[str, Any]:
    return event("k8s:Started", f"Pod web-new-{pod}: Started container app")


def rolling_out(*events: dict[str, Any]) -> dict[str, Any]:
    return {"status": "rolling_out", "replicas": 2, "events": [SCALED_UP, *CREATED, *events]}


def test_only_the_new_pods_apps_count_as_started() -> None:
    fetching = rolling_out(
        OLD_POD_STARTED, event("k8s:Started", "Pod web-new-a: Started container fetch")
    )
    one = rolling_out(OLD_POD_STARTED, started("a"))

    assert pod_progress(fetching["events"]) == (0, 0)
    assert pod_progress(one["events"]) == (1, 0)
    assert progress_wording(one) == "rolling out, 1/2 started"
    assert not all_started(fetching) and not all_started(one)


def test_all_started_once_every_new_pod_runs_its_app_and_only_while_rolling_out() -> None:
    both = rolling_out(started("a"), started("b"))

    assert all_started(both)
    assert not all_started({**both, "status": "succeeded"})
    assert not all_started({**both, "status": "pending"})


def test_the_first_seconds_of_a_rollout_are_polled_finely_then_less_then_backing_off() -> None:
    cadence = Cadence()
    assert cadence.next(cadence.first, 0.5, started=False) == cadence.first
    assert cadence.next(cadence.first, 3.0, started=False) == cadence.interval
    assert cadence.next(cadence.interval, 3.0, started=True) == cadence.started_interval

    waits = [cadence.interval]
    for _ in range(30):
        waits.append(cadence.next(waits[-1], 11.0, started=True))
    assert waits == sorted(waits)
    assert waits[-1] == cadence.max_interval
