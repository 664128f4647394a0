"""What the cluster tests run against: the simulator here, a kind cluster in test_kind.py.

A ``Harness`` hands the tests a ``Cluster`` for the apps namespace, a client that may read
anything there (the Cluster's own identity may not, by design), workload specs, and a way to
make a rollout fail. The simulator fails pods through its hooks; a real cluster through the
spec itself (a wrong digest, a command that exits, a command that never listens).
"""

from __future__ import annotations

import uuid
from typing import Literal, Protocol

from kubernetes.client import ApiClient, CoreV1Api

from chalicelib.kube import Cluster, Rollout
from chalicelib.manifests import JobPurpose, JobSpec, WorkloadSpec, workload_manifests
from infra.kubesim import Simulator
from tests.polling import wait_for

Fault = Literal["crash-loop", "init-failure", "never-ready"]
DIGEST = "5" * 64
PULL_TOKEN = "pull-token-0123456789abcdef"
NAMESPACE = "aether-apps"


def new_app_name() -> str:
    return f"app-{uuid.uuid4().hex[:8]}"


class Harness(Protocol):
    cluster: Cluster
    admin: ApiClient
    namespace: str
    # How long a rollout may take to reach a final phase here.
    timeout: float

    def spec(
        self,
        app_name: str,
        *,
        fault: Fault | None = None,
        deployment_id: str | None = None,
        replicas: int = 1,
    ) -> WorkloadSpec: ...

    def arm(self, fault: Fault, app_name: str) -> None:
        """Make the app's pods fail as ``fault`` says (after ``spec(fault=...)`` was applied)."""
        ...

    def produce_logs(self, app_name: str, count: int) -> None:
        """Make the app's container print at least ``count`` lines."""
        ...


def run_spec(release: WorkloadSpec, command: tuple[str, ...] = ("true",)) -> JobSpec:
    """A one-off run of ``command`` from ``release`` (whose Secrets its rollout applied)."""
    return JobSpec(
        release=release,
        purpose=JobPurpose.RUN,
        command=command,
        deadline_seconds=60,
        ttl_seconds=3600,
        created_by="tests",
        run_id=uuid.uuid4().hex[:12],
    )


def deploy(harness: Harness, spec: WorkloadSpec) -> None:
    harness.cluster.apply(workload_manifests(spec, PULL_TOKEN))


def finished(harness: Harness, spec: WorkloadSpec) -> Rollout:
    """Poll the rollout until it reaches a final phase."""

    def probe() -> Rollout | None:
        rollout = harness.cluster.rollout(spec.app_name, spec.deployment_id)
        return rollout if rollout.finished else None

    return wait_for(probe, timeout=harness.timeout, what=f"the rollout of {spec.app_name}")


def pod_names(harness: Harness, app_name: str, deployment_id: str | None = None) -> list[str]:
    selector = f"app=aether,app_name={app_name}"
    if deployment_id:
        selector += f",deployment_id={deployment_id}"
    pods = CoreV1Api(harness.admin).list_namespaced_pod(harness.namespace, label_selector=selector)
    return sorted(p.metadata.name for p in pods.items if not p.metadata.deletion_timestamp)


class SimHarness:
    """The simulated cluster: faults through its hooks, logs appended through its hooks."""

    timeout = 10.0

    def __init__(self, simulator: Simulator, api: ApiClient) -> None:
        self.sim = simulator
        self.admin = api
        self.namespace = NAMESPACE
        # No settle horizon: the simulator stamps lines with this process's own clock.
        self.cluster = Cluster(api, NAMESPACE, log_settle_seconds=0)

    def spec(
        self,
        app_name: str,
        *,
        fault: Fault | None = None,
        deployment_id: str | None = None,
        replicas: int = 1,
    ) -> WorkloadSpec:
        return WorkloadSpec(
            app_name=app_name,
            deployment_id=deployment_id or str(uuid.uuid4()),
            digest=DIGEST,
            node_major=20,
            start_command="npm start",
            env={"GREETING": "hello"},
            replicas=replicas,
            namespace=NAMESPACE,
            artifact_url=f"http://127.0.0.1:8000/artifacts/{DIGEST}/download",
            progress_deadline_seconds=1 if fault == "never-ready" else 120,
        )

    def arm(self, fault: Fault, app_name: str) -> None:
        if fault == "crash-loop":
            self.sim.crash_loop(NAMESPACE, app_name)
        elif fault == "init-failure":
            self.sim.fail_init_containers(NAMESPACE, app_name)
        else:
            self.sim.never_ready(NAMESPACE, app_name)

    def produce_logs(self, app_name: str, count: int) -> None:
        for index, pod in enumerate(pod_names(self, app_name)):
            lines = [f"pod {index} line {n}" for n in range(count)]
            self.sim.append_log(NAMESPACE, pod, lines, container="app")
