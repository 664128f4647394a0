"""Pods the simulator creates really run: fetch, npm start, probes, restarts, service URLs.

Everything goes through the official client as the control plane does it
(``chalicelib.kube.Cluster``), against a simulator whose runtime is ``ProcessRuntime``.
"""

from __future__ import annotations

import signal
import sys
import threading
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient, ApiException, CoreV1Api

from chalicelib.kube import Cluster, Rollout
from chalicelib.manifests import WorkloadSpec, workload_manifests
from infra.local.cluster import LocalCluster
from infra.local.processes import free_port, start
from tests.local.apps import PULL_TOKEN, ArtifactServer, node_app, running, sha256
from tests.local.conftest import start_fast_cluster
from tests.polling import wait_for

NAMESPACE = "aether-apps"
ROOT = Path(__file__).resolve().parents[2]


def deploy(
    api: ApiClient,
    artifacts: ArtifactServer,
    app: str,
    digest: str,
    *,
    env: dict[str, str] | None = None,
    replicas: int = 1,
    deadline: int = 30,
    probe: dict[str, Any] | None = None,
    node_major: int = 20,
) -> str:
    """Apply the app's manifests as the control plane does; return the deployment id."""
    deployment_id = str(uuid.uuid4())
    spec = WorkloadSpec(
        app_name=app,
        deployment_id=deployment_id,
        digest=digest,
        node_major=node_major,
        start_command="npm start",
        env=env or {},
        replicas=replicas,
        namespace=NAMESPACE,
        artifact_url=f"{artifacts.url}/artifacts/{digest}/download",
        progress_deadline_seconds=deadline,
    )
    manifests = workload_manifests(spec, PULL_TOKEN)
    if probe is not None:
        manifests[1]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = probe
    Cluster(api, NAMESPACE).apply(manifests)
    return deployment_id


def finished_rollout(
    api: ApiClient, app: str, deployment_id: str, *, timeout: float = 10.0
) -> Rollout:
    cluster = Cluster(api, NAMESPACE)

    def finished() -> Rollout | None:
        rollout = cluster.rollout(app, deployment_id)
        return rollout if rollout.finished else None

    return wait_for(finished, timeout=timeout, what=f"the rollout of {app} to finish")


def pods_of(api: ApiClient, app: str, deployment_id: str | None = None) -> list[Any]:
    selector = f"app_name={app}" + (f",deployment_id={deployment_id}" if deployment_id else "")
    return CoreV1Api(api).list_namespaced_pod(NAMESPACE, label_selector=selector).items


def one_pod(api: ApiClient, app: str, deployment_id: str | None = None) -> Any:
    return wait_for(
        lambda: next(iter(pods_of(api, app, deployment_id)), None), what=f"a pod of {app}"
    )


def pod_now(api: ApiClient, name: str) -> Any:
    return CoreV1Api(api).read_namespaced_pod(name, NAMESPACE)


def ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def log_of(api: ApiClient, pod: str, container: str, *, previous: bool = False) -> str:
    try:
        return str(
            CoreV1Api(api).read_namespaced_pod_log(
                pod, NAMESPACE, container=container, previous=previous
            )
        )
    except ApiException as error:
        if error.status == 400:  # not started yet, or no previous instance
            return ""
        raise


def kubectl_status(pod: Any) -> str:
    """The STATUS column of ``kubectl get pods`` for the cases these tests meet."""
    for container in pod.status.init_container_statuses or []:
        state = container.state
        if state.terminated is not None and state.terminated.exit_code != 0:
            return f"Init:{state.terminated.reason or 'Error'}"
        if state.waiting is not None and state.waiting.reason not in (None, "PodInitializing"):
            return f"Init:{state.waiting.reason}"
        if state.terminated is None:
            return "Init:0/1"
    for container in pod.status.container_statuses or []:
        if container.state.waiting is not None and container.state.waiting.reason:
            return str(container.state.waiting.reason)
        if container.state.terminated is not None:
            return str(container.state.terminated.reason or "Error")
    return str(pod.status.phase)


def service_url(api: ApiClient, app: str) -> str:
    """The address published in the Service's status, as a load balancer controller does."""

    def published() -> str | None:
        status: Any = CoreV1Api(api).read_namespaced_service(app, NAMESPACE).status
        ingress = status.load_balancer.ingress if status.load_balancer else None
        if not ingress or not ingress[0].ports:
            return None
        return f"http://{ingress[0].ip}:{ingress[0].ports[0].port}"

    return wait_for(published, what=f"the Service {app} to publish its address")


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def answer_pid(text: str) -> int:
    return int(text.rsplit("pid=", 1)[1])


def test_an_app_becomes_ready_and_answers_at_its_service_url(
    cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer
) -> None:
    digest = artifacts.add(node_app("hello v1"))
    deployment_id = deploy(api, artifacts, "hello", digest)

    assert finished_rollout(api, "hello", deployment_id).phase == "succeeded"
    pod = one_pod(api, "hello", deployment_id)
    assert ready(pod)
    url = service_url(api, "hello")
    assert url.startswith("http://127.0.0.1:")
    assert get(url).startswith("hello v1 pid=")

    app_log = wait_for(lambda: log_of(api, pod.metadata.name, "app"), what="the app's log")
    assert "hello v1 listening on" in app_log
    assert "listening on 8080" not in app_log  # each pod gets its own port, not the manifest's
    fetch_log = log_of(api, pod.metadata.name, "fetch")
    assert "fetch: digest ok" in fetch_log
    # The pull token came from the Secret through secretKeyRef.
    assert artifacts.authorized >= 1
    assert artifacts.refused == 0


def test_readiness_waits_for_the_port_to_listen(
    cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer
) -> None:
    digest = artifacts.add(node_app("late v1"))
    deployment_id = deploy(api, artifacts, "late", digest, env={"MODE": "late"})
    pod = one_pod(api, "late", deployment_id)
    wait_for(
        lambda: "waiting for the gate" in log_of(api, pod.metadata.name, "app"),
        what="the app to start without listening",
    )

    assert not ready(pod_now(api, pod.metadata.name))
    with pytest.raises(OSError):  # no ready pod: the Service's port takes no traffic
        get(service_url(api, "late"))
    gate = cluster.runtime.pod_directory(NAMESPACE, pod.metadata.name) / "volumes/tmp/gate"
    gate.touch()

    assert finished_rollout(api, "late", deployment_id).phase == "succeeded"
    assert get(service_url(api, "late")).startswith("late v1")


def test_an_http_probe_needs_a_success_status(
    cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer
) -> None:
    probe = {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1}
    digest = artifacts.add(node_app("probed v1"))
    deployment_id = deploy(api, artifacts, "probed", digest, probe=probe)
    pod = one_pod(api, "probed", deployment_id)
    wait_for(
        lambda: "readiness 503" in log_of(api, pod.metadata.name, "app"),
        what="a probe to get 503",
    )

    assert not ready(pod_now(api, pod.metadata.name))
    (cluster.runtime.pod_directory(NAMESPACE, pod.metadata.name) / "volumes/tmp/gate").touch()

    assert finished_rollout(api, "probed", deployment_id).phase == "succeeded"
    assert "readiness 200" in log_of(api, pod.metadata.name, "app")


def test_the_service_url_spreads_connections_over_ready_pods(
    cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer
) -> None:
    digest = artifacts.add(node_app("pair v1"))
    deployment_id = deploy(api, artifacts, "pair", digest, replicas=2)

    assert finished_rollout(api, "pair", deployment_id).phase == "succeeded"
    url = service_url(api, "pair")
    pids = {answer_pid(get(url)) for _ in range(4)}
    assert len(pids) == 2


def test_a_rollout_keeps_the_url_and_replaces_the_processes(
    cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer
) -> None:
    first = deploy(api, artifacts, "roll", artifacts.add(node_app("roll v1")))
    assert finished_rollout(api, "roll", first).phase == "succeeded"
    url = service_url(api, "roll")
    old_answer = get(url)
    assert old_answer.startswith("roll v1")
    old_pod = one_pod(api, "roll", first)
    old_processes = [answer_pid(old_answer), *cluster.runtime.process_ids()[old_pod.metadata.uid]]
    old_directory = cluster.runtime.pod_directory(NAMESPACE, old_pod.metadata.name)

    second = deploy(api, artifacts, "roll", artifacts.add(node_app("roll v2")))

    assert finished_rollout(api, "roll", second).phase == "succeeded"
    assert service_url(api, "roll") == url
    assert wait_for(
        lambda: (text := get(url)).startswith("roll v2") and text, what="the new answer"
    )
    wait_for(
        lambda: not any(running(pid) for pid in old_processes),
        what="the old pod's processes to exit",
    )
    wait_for(lambda: not old_directory.exists(), what="the old pod's directory to go")
    assert pods_of(api, "roll", first) == []


def test_a_crash_looping_app_restarts_and_fails_its_rollout(
    cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer
) -> None:
    digest = artifacts.add(node_app("crashy v1"))
    deployment_id = deploy(api, artifacts, "crashy", digest, env={"MODE": "crash"}, deadline=2)
    name = one_pod(api, "crashy", deployment_id).metadata.name

    wait_for(lambda: kubectl_status(pod_now(api, name)) == "CrashLoopBackOff", what="back-off")
    app = wait_for(
        lambda: next(
            (c for c in pod_now(api, name).status.container_statuses if c.restart_count >= 2),
            None,
        ),
        what="the app to be restarted twice",
    )
    rollout = finished_rollout(api, "crashy", deployment_id)

    assert rollout.phase == "failed"
    assert app.last_state.terminated.exit_code == 3
    assert "crashing on purpose" in (app.last_state.terminated.message or "")
    assert "crashing on purpose" in log_of(api, name, "app", previous=True)


def test_a_wrong_digest_stops_the_pod_at_init_error(
    cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer
) -> None:
    claimed = sha256(b"not the bytes that will be served")
    artifacts.add(node_app("tampered"), digest=claimed)
    deployment_id = deploy(api, artifacts, "tampered", claimed, deadline=2)
    name = one_pod(api, "tampered", deployment_id).metadata.name

    wait_for(lambda: kubectl_status(pod_now(api, name)) == "Init:Error", what="Init:Error")
    wait_for(
        lambda: "fetch: error: digest mismatch" in log_of(api, name, "fetch"),
        what="fetch's error in its log",
    )
    assert finished_rollout(api, "tampered", deployment_id).phase == "failed"
    assert pod_now(api, name).status.container_statuses[0].state.waiting.reason == (
        "PodInitializing"
    )
    app_volume = cluster.runtime.pod_directory(NAMESPACE, name) / "volumes" / "app"
    assert app_volume.is_dir()
    assert list(app_volume.iterdir()) == []  # nothing of the refused archive was extracted


def test_close_leaves_no_process_behind(
    open_dir: Path, tmp_path: Path, artifacts: ArtifactServer, node_cache: Path
) -> None:
    from chalicelib.kube import api_client

    threads_before = set(threading.enumerate())
    local = start_fast_cluster(open_dir / "pods", node_cache)
    try:
        api = api_client(str(local.write_kubeconfig(tmp_path / "kubeconfig")))
        deployment_id = deploy(api, artifacts, "leaver", artifacts.add(node_app("leaver v1")))
        assert finished_rollout(api, "leaver", deployment_id).phase == "succeeded"
        node_pid = answer_pid(get(service_url(api, "leaver")))
        leaders = [pid for pids in local.runtime.process_ids().values() for pid in pids]
        assert leaders
    finally:
        local.close()

    assert not running(node_pid)
    assert not any(running(pid) for pid in leaders)
    assert list((open_dir / "pods").glob("*/*")) == []  # no pod directory is left
    leaked = [
        t.name
        for t in set(threading.enumerate()) - threads_before
        # The module's cluster keeps running other apps' pods meanwhile: only this one's count.
        if t.name.startswith(
            ("aether-pod-leaver", "aether-log-leaver", "aether-service", "kubesim-")
        )
    ]
    assert leaked == []


def test_the_cluster_command_runs_pods_and_stops_them_on_sigterm(
    open_dir: Path, tmp_path: Path, artifacts: ArtifactServer, node_cache: Path
) -> None:
    from chalicelib.kube import api_client

    port = free_port()
    kubeconfig = tmp_path / "kubeconfig"
    command = [
        sys.executable,
        "-m",
        "infra.local.cluster",
        "--port",
        str(port),
        "--kubeconfig",
        str(kubeconfig),
        "--state-dir",
        str(open_dir / "pods"),
        "--node-dir",
        str(node_cache),
        "--app-port-base",
        str(free_port()),
    ]
    service = start("cluster", command, port, tmp_path / "cluster.log", cwd=ROOT)
    try:
        wait_for(kubeconfig.exists, what="the kubeconfig")  # written once the port answers
        api = api_client(str(kubeconfig))
        # The namespace is there as infra/k8s/namespace.yaml describes it.
        namespace: Any = CoreV1Api(api).read_namespace(NAMESPACE)
        assert namespace.metadata.labels["app.kubernetes.io/part-of"] == "aether"
        deployment_id = deploy(api, artifacts, "cli", artifacts.add(node_app("cli v1")))
        assert finished_rollout(api, "cli", deployment_id).phase == "succeeded"
        node_pid = answer_pid(get(service_url(api, "cli")))

        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(timeout=30) == 0
    finally:
        service.stop()

    assert not running(node_pid)
    assert list((open_dir / "pods").glob("*/*")) == []
