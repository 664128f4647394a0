"""One simulator per session on an ephemeral loopback port, reset before every test.

The apps namespace is created by the test as the operator would (infra/k8s/namespace.yaml):
the Cluster class never creates namespaces.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client import ApiClient, CoreV1Api

from chalicelib.kube import Cluster, WorkloadSpec, api_client
from infra.kubesim import Simulator, start_simulator
from tests.kube.harness import DIGEST, Fault, pod_names

NAMESPACE = "aether-apps"


@pytest.fixture(scope="session")
def simulator() -> Iterator[Simulator]:
    simulator = start_simulator()
    yield simulator
    simulator.stop()


@pytest.fixture(scope="session")
def sim_kubeconfig(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulator.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig")


@pytest.fixture(scope="session")
def sim_api(sim_kubeconfig: Path) -> ApiClient:
    return api_client(str(sim_kubeconfig))


@pytest.fixture
def sim(simulator: Simulator, sim_api: ApiClient) -> Iterator[Simulator]:
    simulator.reset()
    CoreV1Api(sim_api).create_namespace({"metadata": {"name": NAMESPACE}})
    yield simulator
    simulator.reset()


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


@pytest.fixture
def harness(sim: Simulator, sim_api: ApiClient) -> SimHarness:
    return SimHarness(sim, sim_api)
