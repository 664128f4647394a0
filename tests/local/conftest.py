"""A local cluster whose pods really run (ProcessRuntime + service proxies), once per module.

Every test deploys its own app name into ``aether-apps``; nothing needs a reset between them.
"""

from __future__ import annotations

import shutil
import tempfile
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
    wrong_port_grace=0.5,
)


def start_fast_cluster(state_dir: Path, node_dir: Path) -> LocalCluster:
    return start_cluster(state_dir, timing=FAST, port_base=free_port(), node_dir=node_dir)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A fresh directory other users can reach (pods run as uid 1000 when tests run as root):
    pytest's own temporary directories are private to the user running the tests."""
    directory = Path(tempfile.mkdtemp(prefix="aether-test-"))
    directory.chmod(0o711)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def artifacts() -> Iterator[ArtifactServer]:
    server = ArtifactServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def cluster(node_cache: Path) -> Iterator[LocalCluster]:
    state = Path(tempfile.mkdtemp(prefix="aether-test-pods-"))
    state.chmod(0o711)
    cluster = start_fast_cluster(state, node_cache)
    yield cluster
    cluster.close()
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def api(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> ApiClient:
    return api_client(str(cluster.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config")))
