"""One simulator per session on an ephemeral loopback port, reset before every test.

The apps namespace is created by the test as the operator would (infra/k8s/namespace.yaml):
the Cluster class never creates namespaces.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client import ApiClient, CoreV1Api

from chalicelib.kube import api_client
from infra.kubesim import Simulator, start_simulator
from tests.kube.harness import NAMESPACE, SimHarness


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


@pytest.fixture
def harness(sim: Simulator, sim_api: ApiClient) -> SimHarness:
    return SimHarness(sim, sim_api)
