"""Servers shared by the whole suite, started once per session on loopback ports."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.local.processes import PORT_RANGE_VARIABLE, Service, free_port, start_moto

ADMIN_TOKEN = "test-admin-token-0123456789"
APPS_NAMESPACE = "aether-apps"
# Under pytest-xdist each worker (gw0, gw1, …) and every server it starts picks ports from
# its own slice of 10000-30000, below the kernel's ephemeral range (32768-60999).
PORT_SLICE = 4000
PORT_SLICES = 5


def pytest_configure(config: pytest.Config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw"):
        low = 10000 + (int(worker[2:]) % PORT_SLICES) * PORT_SLICE
        os.environ[PORT_RANGE_VARIABLE] = f"{low}-{low + PORT_SLICE}"


@pytest.fixture(scope="session")
def node_cache() -> Iterator[Path]:
    """Where the session installs real Node binaries (``aether_cli.nodejs``): once per major.

    Outside pytest's private temporary tree, so that pods running as another user reach it.
    """
    directory = Path(tempfile.mkdtemp(prefix="aether-test-node-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = start_moto(free_port(), tmp_path_factory.mktemp("moto") / "moto.log")
    yield service
    service.stop()


@pytest.fixture(scope="session")
def kube_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One simulated cluster for the session, with the apps namespace the operator creates."""
    from infra.kubesim import start_simulator

    simulator = start_simulator()
    simulator.kubeconfig = simulator.write_kubeconfig(
        tmp_path_factory.mktemp("kube") / "kubeconfig"
    )
    import kubernetes

    from chalicelib.kube import api_client

    with api_client(str(simulator.kubeconfig)) as client:
        kubernetes.client.CoreV1Api(client).create_namespace({"metadata": {"name": APPS_NAMESPACE}})
    yield simulator
    simulator.stop()


@pytest.fixture(scope="session")
def aws_environment(moto_server: Service, kube_simulator: Any) -> Iterator[dict[str, str]]:
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_server.url,
        "AETHER_STAGE": "test",
        # Explicit, so `chalice local` (whose stage config sets AETHER_STAGE) uses them too.
        "AETHER_TABLE_PREFIX": "aether-test",
        "AETHER_BUCKET": "aether-test-artifacts",
        "AETHER_CONFIG_KEY_ID": "alias/aether-test-config",
        "AETHER_CONFIG_MAC_KEY_ID": "alias/aether-test-config-mac",
        "AETHER_API_TOKENS": ADMIN_TOKEN,
        "POWERTOOLS_METRICS_NAMESPACE": "AetherTest",
        "KUBECONFIG": str(kube_simulator.kubeconfig),
        "AETHER_DEFAULT_NAMESPACE": APPS_NAMESPACE,
        "AETHER_PUBLIC_API_URL": "http://127.0.0.1:9",
        "AETHER_PROGRESS_DEADLINE_SECONDS": "5",
        # Hooks to the suite's own loopback receivers, retried briefly so that a receiver
        # that never answers is given up on within seconds.
        "AETHER_HOOKS_ALLOW_LOOPBACK": "true",
        "AETHER_HOOK_TIMEOUT_SECONDS": "1",
        "AETHER_HOOK_BACKOFF_SECONDS": "1",
        "AETHER_HOOK_RETRY_SECONDS": "10",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield env


@pytest.fixture(scope="session")
def control_plane(aws_environment: dict[str, str]) -> Iterator[Any]:
    """The Chalice app module, bound to freshly provisioned moto resources."""
    import app as control_plane_app
    from chalicelib.settings import Settings
    from infra.local.provision import provision

    control_plane_app.upload_queue_url = provision(Settings.from_env())
    _reset_caches(control_plane_app)
    yield control_plane_app
    _reset_caches(control_plane_app)


@pytest.fixture(scope="session")
def local_api(control_plane: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The same app served over HTTP by Chalice's local gateway, as ``make up`` serves it."""
    import os
    import sys
    from pathlib import Path

    from infra.local.processes import start

    port = free_port()
    root = Path(__file__).resolve().parents[1]
    service = start(
        "api",
        [
            sys.executable,
            "-m",
            "infra.local.api",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--stage",
            "local",
        ],
        port,
        tmp_path_factory.mktemp("api") / "api.log",
        env={**os.environ, "AETHER_PUBLIC_API_URL": f"http://127.0.0.1:{port}"},
        cwd=root,
    )
    yield service
    service.stop()


def _reset_caches(module: Any) -> None:
    for cached in (
        module.get_settings,
        module.get_store,
        module.get_data_plane,
        module.env_token_hashes,
        module.get_verifier,
        module.get_hook_queue,
        module.get_courier,
    ):
        cached.cache_clear()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """Calls the Chalice app in-process through ``chalice.test.Client``."""

    def __init__(self, client: Any, token: str | None) -> None:
        self._client = client
        self.token = token

    def as_(self, token: str | None) -> Api:
        return Api(self._client, token)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | str | None = None,
    ) -> Reply:
        sent = {"content-type": "application/json", **(headers or {})}
        if self.token is not None:
            sent.setdefault("authorization", f"Bearer {self.token}")
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = self._client.http.request(method, path, headers=sent, body=payload or b"")
        return Reply(response.status_code, dict(response.headers), response.body)

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.call("POST", path, body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Reply:
        return self.call("DELETE", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> Reply:
        return self.call("HEAD", path, **kwargs)


@pytest.fixture
def api(control_plane: Any) -> Iterator[Api]:
    from chalice.test import Client

    with Client(control_plane.app) as client:
        yield Api(client, ADMIN_TOKEN)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """An app name no other test uses (the moto server lives for the whole session)."""
    import re
    import uuid

    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    return f"{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def app_name(api: Api, unique_name: str) -> str:
    """A registered app no other test uses."""
    assert api.post("/apps", {"name": unique_name}).status == 201
    return unique_name


@pytest.fixture
def healthy_cluster(kube_simulator: Any) -> Iterator[None]:
    """Whatever a test breaks in the shared cluster (API down, injected faults) is repaired after it."""
    yield
    kube_simulator.set_api_down(False)
    kube_simulator.clear_faults()
