"""The Kubernetes simulator's workload controller with many settled Deployments.

    .venv/bin/python bench/kubesim_bench.py [--apps 300] [--reps 5]

A test session's simulator collects hundreds of apps. Prints, with ``--apps`` settled
Deployments (one ready pod each): the time of a full pass (every Deployment, ReplicaSet and
pod: the baseline, which every pass was before passes synced only what changed), of a pass
with nothing changed, and of a pass after one Deployment's scale; then the time a rollout of
one Deployment takes to complete in an empty simulator and beside the settled ones, with the
controller's own loop running as it does in tests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra.kubesim import start_simulator
from infra.kubesim.resources import DEPLOYMENTS, NAMESPACES
from infra.kubesim.simulator import Simulator

NAMESPACE = "bench"


def deployment(name: str, version: str = "v1") -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": {"version": version}},
                "spec": {"containers": [{"name": "app", "image": "node:24-slim"}]},
            },
        },
    }


def complete(simulator: Simulator, name: str) -> bool:
    obj = simulator.store.get(DEPLOYMENTS, NAMESPACE, name)
    status = obj.get("status") or {}
    return (
        status.get("observedGeneration") == obj["metadata"]["generation"]
        and status.get("updatedReplicas") == status.get("availableReplicas") == 1
        and status.get("replicas") == 1
    )


def wait(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the simulator")
        time.sleep(0.01)


def populated(apps: int) -> Simulator:
    simulator = start_simulator()
    simulator.store.create(NAMESPACES, "", {"metadata": {"name": NAMESPACE}})
    for i in range(apps):
        simulator.store.create(DEPLOYMENTS, NAMESPACE, deployment(f"app-{i}"))
    wait(lambda: all(complete(simulator, f"app-{i}") for i in range(apps)), timeout=600)
    return simulator


def rollout_seconds(simulator: Simulator, name: str, version: str) -> float:
    def change(obj: dict[str, Any]) -> dict[str, Any]:
        obj["spec"]["template"]["metadata"]["annotations"]["version"] = version
        return obj

    started = time.perf_counter()
    simulator.store.modify(DEPLOYMENTS, NAMESPACE, name, change)
    wait(lambda: complete(simulator, name))
    return time.perf_counter() - started


def timed(action: Callable[[], None], reps: int) -> float:
    seconds = []
    for _ in range(reps):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=300)
    parser.add_argument("--reps", type=int, default=5)
    options = parser.parse_args()

    empty = populated(1)
    alone = [rollout_seconds(empty, "app-0", f"v{rep + 2}") for rep in range(options.reps)]
    empty.stop()

    crowded = populated(options.apps)
    beside = [rollout_seconds(crowded, "app-0", f"v{rep + 2}") for rep in range(options.reps)]
    controller = crowded.controller
    controller.stop()  # the passes below run alone

    def full_pass() -> None:
        controller._next_full_pass = 0.0
        controller.reconcile()

    def scaled_pass() -> None:
        replicas = crowded.store.get(DEPLOYMENTS, NAMESPACE, "app-1")["spec"]["replicas"]

        def change(obj: dict[str, Any]) -> dict[str, Any]:
            obj["spec"]["replicas"] = 2 if replicas == 1 else 1
            return obj

        crowded.store.modify(DEPLOYMENTS, NAMESPACE, "app-1", change)
        controller.reconcile()

    full = timed(full_pass, options.reps)
    idle = timed(controller.reconcile, options.reps)
    scaled = timed(scaled_pass, options.reps)
    crowded.stop()

    print(f"workload controller, {options.apps} settled Deployments, median of {options.reps}")
    print(f"  full pass (baseline)          {full * 1000:8.1f} ms")
    print(f"  pass, nothing changed         {idle * 1000:8.1f} ms  ({idle / full:.1%})")
    print(f"  pass after one scale          {scaled * 1000:8.1f} ms  ({scaled / full:.1%})")
    print("rollout of one Deployment to complete, median")
    print(f"  alone (baseline)              {statistics.median(alone):8.3f} s")
    print(
        f"  beside {options.apps} settled          "
        f"{statistics.median(beside):8.3f} s  (slowest {max(beside):.3f} s)"
    )


if __name__ == "__main__":
    main()
