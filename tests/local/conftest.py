"""A local cluster whose pods really run (ProcessRuntime + service proxies), once per module.

Every test deploys its own app name into ``aether-apps``; nothing needs a reset between them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client import ApiClient

from chalicelib.kube import api_client
from infra.local.cluster import LocalCluster, start_cluster
from infra.local.dataplane import Timing
from infra.local.processes import free_port
from tests.local.apps import ArtifactServer

if shutil.which("node") is None or shutil.which("npm") is None:
    pytest.skip(
        "the local data plane runs apps with the machine's node and npm; neither is on PATH",
        allow_module_level=True,
    )

# Seconds, not the kubelet's minutes: restarts and probes fast enough for a test module.
FAST = Timing(
    backoff_initial=0.2,
    backoff_max=1.0,
    probe_delay_max=0.1,
    probe_period_max=0.1,
    probe_timeout_max=1.0,
    grace_period_max=2.0,
    poll_interval=0.02,
)


def start_fast_cluster(state_dir: Path) -> LocalCluster:
    return start_cluster(state_dir, timing=FAST, port_base=free_port())


@pytest.fixture(scope="module")
def artifacts() -> Iterator[ArtifactServer]:
    server = ArtifactServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = start_fast_cluster(tmp_path_factory.mktemp("pods"))
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def api(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> ApiClient:
    return api_client(str(cluster.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config")))
