"""One simulator per session on an ephemeral loopback port, reset before every test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from infra.kubesim import Simulator, start_simulator


@pytest.fixture(scope="session")
def simulator_session() -> Iterator[Simulator]:
    simulator = start_simulator()
    yield simulator
    simulator.stop()


@pytest.fixture(scope="session")
def kubeconfig(simulator_session: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulator_session.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig")


@pytest.fixture
def sim(simulator_session: Simulator) -> Iterator[Simulator]:
    simulator_session.reset()
    yield simulator_session
    simulator_session.reset()


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture
def core(sim: Simulator, api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def apps(sim: Simulator, api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


@pytest.fixture
def namespace(core: client.CoreV1Api) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": name}})
    return name
