"""The node's layer cache on the embedded data plane: a hostPath the node's setup gives the
fetcher, a dependencies layer downloaded once per node, and an app that reads the cached
files through its tree but can never change them."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client import ApiClient

from chalicelib.contract import ArtifactKind
from chalicelib.kube import Cluster, api_client
from chalicelib.manifests import WorkloadSpec, workload_manifests
from infra.local.cluster import LocalCluster, start_cluster
from infra.local.processes import free_port
from tests.local.apps import PULL_TOKEN, SERVER_JS, ArtifactServer, sha256
from tests.local.conftest import FAST
from tests.local.test_dataplane import NAMESPACE, finished_rollout, get, log_of, service_url

CACHE = "/var/lib/aether/layers"


def tar_gz(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in sorted({str(Path(n).parent) for n in files} - {"."}):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            archive.addfile(info)
        for name, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


DEPS = tar_gz({"node_modules/greeting/index.js": "module.exports = 'hello'\n"})


def app_layer(message: str) -> bytes:
    package = {"name": "cached", "version": "1.0.0", "scripts": {"start": "node server.js"}}
    return tar_gz(
        {"package.json": json.dumps(package), "server.js": SERVER_JS, "message.txt": message}
    )


@pytest.fixture(scope="module")
def cached_cluster(node_cache: Path) -> Iterator[LocalCluster]:
    state = Path(tempfile.mkdtemp(prefix="aether-test-pods-"))
    state.chmod(0o711)
    cluster = start_cluster(
        state, timing=FAST, port_base=free_port(), node_dir=node_cache, layer_cache=CACHE
    )
    yield cluster
    cluster.close()
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def api(cached_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> ApiClient:
    config = tmp_path_factory.mktemp("kube") / "config"
    return api_client(str(cached_cluster.write_kubeconfig(config)))


def deploy_layers(api: ApiClient, artifacts: ArtifactServer, app: str, message: str) -> str:
    layers = [("deps", DEPS), ("app", app_layer(message))]
    document = {
        "app": app,
        "layers": [{"digest": sha256(d), "role": r, "size": len(d)} for r, d in layers],
        "schema": "aether.artifact/v2",
    }
    manifest = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    for _, data in layers:
        artifacts.add(data)
    digest = artifacts.add(manifest)
    deployment_id = str(uuid.uuid4())
    spec = WorkloadSpec(
        app_name=app,
        deployment_id=deployment_id,
        digest=digest,
        node_major=20,
        start_command="npm start",
        env={},
        replicas=1,
        namespace=NAMESPACE,
        artifact_url=f"{artifacts.url}/artifacts/{digest}/download",
        artifact_kind=ArtifactKind.MANIFEST,
        progress_deadline_seconds=30,
        layer_cache_dir=CACHE,
    )
    Cluster(api, NAMESPACE).apply(workload_manifests(spec, PULL_TOKEN))
    return deployment_id


def rolled_out(api: ApiClient, artifacts: ArtifactServer, app: str, message: str) -> bool:
    deployment_id = deploy_layers(api, artifacts, app, message)
    rollout = finished_rollout(api, app, deployment_id, timeout=60)
    assert rollout.phase == "succeeded", rollout.message
    return True


def app_tree(cluster: LocalCluster, api: ApiClient, app: str) -> tuple[str, Path]:
    from tests.local.test_dataplane import one_pod

    pod = one_pod(api, app).metadata.name
    return pod, cluster.runtime.pod_directory(NAMESPACE, pod) / "volumes" / "app"


def test_a_second_app_with_the_same_dependencies_links_them_from_the_node(
    cached_cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer
) -> None:
    first, second = f"cache-a-{uuid.uuid4().hex[:6]}", f"cache-b-{uuid.uuid4().hex[:6]}"
    assert rolled_out(api, artifacts, first, "one")
    assert rolled_out(api, artifacts, second, "two")

    assert artifacts.downloads[sha256(DEPS)] == 1  # once for the node, not once per pod
    assert get(service_url(api, second)).startswith("two")
    pod, tree = app_tree(cached_cluster, api, second)
    assert "is in the node's cache" in log_of(api, pod, "fetch")
    cached = cached_cluster.runtime.host_directory(CACHE) / sha256(DEPS) / "tree"
    linked = tree / "node_modules/greeting/index.js"
    assert linked.read_text() == "module.exports = 'hello'\n"
    assert linked.stat().st_ino == (cached / "node_modules/greeting/index.js").stat().st_ino
    assert linked.stat().st_mode & 0o777 == 0o444


@pytest.mark.skipif(os.geteuid() != 0, reason="pods run as their own users only under root")
def test_the_app_cannot_write_to_the_cache_and_its_own_files_stay_writable(
    cached_cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer
) -> None:
    app = f"cache-w-{uuid.uuid4().hex[:6]}"
    assert rolled_out(api, artifacts, app, "mine")
    _, tree = app_tree(cached_cluster, api, app)
    cache = cached_cluster.runtime.host_directory(CACHE)
    info = cache.stat()
    assert (info.st_uid, info.st_mode & 0o777) == (1001, 0o700)  # the fetcher's alone
    linked = tree / "node_modules/greeting/index.js"
    assert (linked.stat().st_uid, linked.stat().st_mode & 0o777) == (1001, 0o444)

    def as_app(script: str) -> int:
        return subprocess.run(
            ["/bin/sh", "-c", script],
            user=1000,
            group=1000,
            extra_groups=[],
            capture_output=True,
            timeout=30,
            check=False,
            cwd=tree,
        ).returncode

    for attack in (
        "echo evil >> node_modules/greeting/index.js",
        "chmod 666 node_modules/greeting/index.js",
        "rm -f node_modules/greeting/index.js",
        f"ls {cache}",
        f"touch {cache}/planted",
    ):
        assert as_app(attack) != 0, attack
    assert linked.read_text() == "module.exports = 'hello'\n"
    assert as_app("echo more >> message.txt && mkdir -p uploads && touch uploads/a") == 0
