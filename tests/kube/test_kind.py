"""The cluster tests of test_cluster.py, again, against a real cluster (kind).

Run ``infra/kind/up.sh``, then::

    AETHER_KIND_KUBECONFIG=.aether/kind-kubeconfig \\
    AETHER_KIND_ADMIN_KUBECONFIG=.aether/kind-admin-kubeconfig \\
    .venv/bin/pytest -m kind tests/kube/test_kind.py

The Cluster talks as the control plane's ServiceAccount (AETHER_KIND_KUBECONFIG), so the Role
in infra/k8s/rbac.yaml is enforced for real; the admin kubeconfig serves a test artifact from
inside the cluster, reads what the Role may not, and cleans up. Faults come from the WorkloadSpec
instead of simulator hooks: a wrong digest (the fetcher refuses it), a start command that
exits, one that never listens.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import ApiClient, ApiException, AppsV1Api, CoreV1Api

from chalicelib.kube import Cluster, api_client
from chalicelib.manifests import WorkloadSpec
from tests.kube.harness import NAMESPACE, Fault
from tests.polling import wait_for

KUBECONFIG = os.environ.get("AETHER_KIND_KUBECONFIG", "")
ADMIN_KUBECONFIG = os.environ.get("AETHER_KIND_ADMIN_KUBECONFIG", "")

if not KUBECONFIG or not ADMIN_KUBECONFIG:
    pytest.skip(
        "no kind cluster configured: run infra/kind/up.sh and set AETHER_KIND_KUBECONFIG and "
        "AETHER_KIND_ADMIN_KUBECONFIG (it prints both)",
        allow_module_level=True,
    )

# The very same tests, collected again in this module with the kind harness below.
from tests.kube.test_cluster import *  # noqa: E402, F403

pytestmark = pytest.mark.kind

ARTIFACT_SERVER = "aether-test-artifacts"
SERVER_JS = """\
const http = require("http");
let n = 0;
setInterval(() => console.log(`tick ${n++}`), 200);
http.createServer((req, res) => res.end("ok\\n")).listen(Number(process.env.PORT));
"""
PACKAGE_JSON = (
    '{"name": "kind-probe", "version": "1.0.0", "scripts": {"start": "node server.js"}}\n'
)


def _artifact() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in (("package.json", PACKAGE_JSON), ("server.js", SERVER_JS)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _restricted() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


@pytest.fixture(scope="module")
def admin() -> ApiClient:
    return api_client(ADMIN_KUBECONFIG)


@pytest.fixture(scope="module")
def artifact(admin: ApiClient) -> Iterator[tuple[str, str]]:
    """A tiny Node app served at /artifacts/<digest>/download from inside the cluster."""
    data = _artifact()
    digest = hashlib.sha256(data).hexdigest()
    core, apps = CoreV1Api(admin), AppsV1Api(admin)
    labels = {"app.kubernetes.io/name": ARTIFACT_SERVER}
    _remove_artifact_server(core, apps)  # left over by an interrupted run
    core.create_namespaced_config_map(
        NAMESPACE,
        {
            "metadata": {"name": ARTIFACT_SERVER, "labels": labels},
            "binaryData": {"download": base64.b64encode(data).decode()},
        },
    )
    apps.create_namespaced_deployment(
        NAMESPACE,
        {
            "metadata": {"name": ARTIFACT_SERVER, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "containers": [
                            {
                                "name": "http",
                                "image": "aether-fetcher:1",
                                "imagePullPolicy": "IfNotPresent",
                                "command": ["python", "-I", "-m", "http.server", "8000"],
                                "args": ["--directory", "/srv"],
                                "ports": [{"containerPort": 8000}],
                                "readinessProbe": {"tcpSocket": {"port": 8000}},
                                "securityContext": _restricted(),
                                "volumeMounts": [
                                    {"name": "artifact", "mountPath": f"/srv/artifacts/{digest}"}
                                ],
                            }
                        ],
                        "volumes": [{"name": "artifact", "configMap": {"name": ARTIFACT_SERVER}}],
                    },
                },
            },
        },
    )
    core.create_namespaced_service(
        NAMESPACE,
        {
            "metadata": {"name": ARTIFACT_SERVER, "labels": labels},
            "spec": {"selector": labels, "ports": [{"port": 8000, "targetPort": 8000}]},
        },
    )

    def ready() -> bool:
        status = apps.read_namespaced_deployment(ARTIFACT_SERVER, NAMESPACE).status
        return bool(status.available_replicas)

    try:
        wait_for(ready, timeout=120, what="the artifact server")
        url = f"http://{ARTIFACT_SERVER}.{NAMESPACE}.svc:8000/artifacts/{digest}/download"
        yield url, digest
    finally:
        _remove_artifact_server(core, apps)


def _remove_artifact_server(core: CoreV1Api, apps: AppsV1Api) -> None:
    for delete in (
        apps.delete_namespaced_deployment,
        core.delete_namespaced_service,
        core.delete_namespaced_config_map,
    ):
        try:
            delete(ARTIFACT_SERVER, NAMESPACE)
        except ApiException as error:
            if error.status != 404:
                raise


class KindHarness:
    timeout = 240.0

    def __init__(self, admin: ApiClient, artifact: tuple[str, str]) -> None:
        self.admin = admin
        self.namespace = NAMESPACE
        self.cluster = Cluster(api_client(KUBECONFIG), NAMESPACE, log_settle_seconds=0)
        self._url, self._digest = artifact

    def spec(
        self,
        app_name: str,
        *,
        fault: Fault | None = None,
        deployment_id: str | None = None,
        replicas: int = 1,
    ) -> WorkloadSpec:
        start_command = {
            "crash-loop": "echo crashing >&2; exit 1",
            "never-ready": "echo never listening; exec sleep 3600",
        }.get(fault or "", "npm start")
        return WorkloadSpec(
            app_name=app_name,
            deployment_id=deployment_id or str(uuid.uuid4()),
            # The fetcher downloads the real archive and refuses it: digest mismatch.
            digest="0" * 64 if fault == "init-failure" else self._digest,
            node_major=20,
            start_command=start_command,
            env={"GREETING": "hello"},
            replicas=replicas,
            namespace=NAMESPACE,
            artifact_url=self._url,
            progress_deadline_seconds=15 if fault == "never-ready" else 120,
        )

    def arm(self, fault: Fault, app_name: str) -> None:
        return  # the WorkloadSpec carries the fault

    def produce_logs(self, app_name: str, count: int) -> None:
        time.sleep(0.2 * count)  # the app prints a line every 200 ms

    def clean(self) -> None:
        selector = "app=aether"
        core, apps = CoreV1Api(self.admin), AppsV1Api(self.admin)
        for deployment in apps.list_namespaced_deployment(NAMESPACE, label_selector=selector).items:
            apps.delete_namespaced_deployment(deployment.metadata.name, NAMESPACE)
        for service in core.list_namespaced_service(NAMESPACE, label_selector=selector).items:
            core.delete_namespaced_service(service.metadata.name, NAMESPACE)
        for secret in core.list_namespaced_secret(NAMESPACE, label_selector=selector).items:
            core.delete_namespaced_secret(secret.metadata.name, NAMESPACE)


@pytest.fixture
def harness(admin: ApiClient, artifact: tuple[str, str]) -> Iterator[KindHarness]:
    kind = KindHarness(admin, artifact)
    yield kind
    kind.clean()
