"""Scripted failures: API down, crash loops, failing init containers, stalled rollouts."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from infra.kubesim import Simulator
from tests.kubesim.workloads import condition, deployment
from tests.polling import wait_for


def _control(sim: Simulator, method: str, hook: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{sim.url}/_sim/{hook}", data=data, method=method)
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def _pod(core: client.CoreV1Api, namespace: str) -> client.V1Pod | None:
    pods = core.list_namespaced_pod(namespace).items
    return pods[0] if pods else None


def _app_container(
    core: client.CoreV1Api, namespace: str, name: str
) -> client.V1ContainerStatus | None:
    """The pod's first container's status; None until the pod has container statuses (a pod
    just created has none yet)."""
    statuses = core.read_namespaced_pod(name, namespace).status.container_statuses
    return statuses[0] if statuses else None


def test_api_down_answers_503_until_it_is_up_again(core: client.CoreV1Api, sim: Simulator) -> None:
    sim.set_api_down(True)
    with pytest.raises(ApiException) as error:
        core.list_namespace()
    assert error.value.status == 503
    assert "ServiceUnavailable" in error.value.body
    sim.set_api_down(False)
    assert core.list_namespace().items


def test_api_down_through_the_http_control_surface(core: client.CoreV1Api, sim: Simulator) -> None:
    _control(sim, "POST", "api-down")
    assert _control(sim, "GET", "state")["apiDown"] is True
    with pytest.raises(ApiException) as error:
        core.read_namespace("default")
    assert error.value.status == 503
    _control(sim, "POST", "api-up")
    assert core.read_namespace("default").metadata.name == "default"


def test_crash_loop_restarts_the_container_with_back_off(
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str, sim: Simulator
) -> None:
    sim.crash_loop(namespace, "web")
    apps.create_namespaced_deployment(namespace, deployment("web"))

    def crash_looping() -> client.V1ContainerStatus | None:
        pod = _pod(core, namespace)
        statuses = (pod.status.container_statuses or []) if pod else []
        waiting = statuses[0].state.waiting if statuses else None
        looping = waiting is not None and waiting.reason == "CrashLoopBackOff"
        return statuses[0] if looping and statuses[0].restart_count >= 1 else None

    status = wait_for(crash_looping, what="CrashLoopBackOff after a restart")
    assert status.last_state.terminated.exit_code == 1
    assert not status.ready
    pod_name = _pod(core, namespace).metadata.name
    previous = core.read_namespaced_pod_log(pod_name, namespace, previous=True)
    assert "simulated crash" in previous
    found = apps.read_namespaced_deployment("web", namespace)
    assert condition(found, "Available").status == "False"
    reasons = {e.reason for e in core.list_namespaced_event(namespace).items}
    assert "BackOff" in reasons


def test_crash_loop_hits_pods_that_are_already_running_and_clears(
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str, sim: Simulator
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("web"))
    wait_for(
        lambda: apps.read_namespaced_deployment("web", namespace).status.available_replicas,
        what="availability",
    )
    sim.crash_loop(namespace, label_selector="app_name=web")

    def restarted() -> bool:
        pod = _pod(core, namespace)
        statuses = pod.status.container_statuses if pod else None
        return bool(statuses and statuses[0].restart_count >= 1)

    wait_for(restarted, what="a restart")
    sim.clear_faults()

    def recovered() -> bool:
        found = apps.read_namespaced_deployment("web", namespace)
        return condition(found, "Available").status == "True"

    wait_for(recovered, what="the deployment to recover")


def test_failing_init_container_keeps_the_pod_initializing(
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str, sim: Simulator
) -> None:
    sim.fail_init_containers(namespace, "web")
    apps.create_namespaced_deployment(namespace, deployment("web"))

    def init_error() -> client.V1ContainerStatus | None:
        pod = _pod(core, namespace)
        statuses = (pod.status.init_container_statuses or []) if pod else []
        if not statuses:
            return None
        terminated = statuses[0].state.terminated or statuses[0].last_state.terminated
        return statuses[0] if terminated and terminated.reason == "Error" else None

    status = wait_for(init_error, what="Init:Error")
    assert status.name == "fetch"
    pod = _pod(core, namespace)
    assert pod.status.phase == "Pending"
    initialized = next(c for c in pod.status.conditions if c.type == "Initialized")
    assert initialized.status == "False"
    assert pod.status.container_statuses[0].state.waiting.reason == "PodInitializing"
    assert "simulated init container failure" in core.read_namespaced_pod_log(
        pod.metadata.name, namespace, container="fetch"
    )


def test_a_rollout_that_never_becomes_available_exceeds_its_deadline(
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str, sim: Simulator
) -> None:
    sim.never_ready(namespace, "web")
    apps.create_namespaced_deployment(namespace, deployment("web", progress_deadline_seconds=1))

    def timed_out() -> client.V1DeploymentCondition | None:
        found = apps.read_namespaced_deployment("web", namespace)
        progressing = condition(found, "Progressing")
        exceeded = progressing is not None and progressing.reason == "ProgressDeadlineExceeded"
        return progressing if exceeded else None

    progressing = wait_for(timed_out, what="ProgressDeadlineExceeded")
    assert progressing.status == "False"
    assert "has timed out progressing" in progressing.message
    pod = _pod(core, namespace)
    assert pod.status.phase == "Running"
    assert not pod.status.container_statuses[0].ready


def test_faults_are_scripted_over_http_too(
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str, sim: Simulator
) -> None:
    _control(sim, "POST", "faults", {"fault": "init-failure", "namespace": namespace})
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [{"name": "fetch", "image": "f"}],
                "containers": [{"name": "app", "image": "a"}],
            },
        },
    )

    def init_restarted() -> bool:
        statuses = core.read_namespaced_pod("p", namespace).status.init_container_statuses
        return bool(statuses and statuses[0].restart_count >= 1)

    wait_for(init_restarted, what="the init container to be restarted")
    _control(sim, "DELETE", "faults")
    wait_for(
        lambda: (status := _app_container(core, namespace, "p")) and status.ready,
        what="the pod to become ready once the fault is gone",
    )


def test_unknown_hooks_are_404(sim: Simulator) -> None:
    with pytest.raises(urllib.error.HTTPError) as error:
        _control(sim, "POST", "no-such-hook")
    assert error.value.code == 404


def test_log_lines_are_appended_over_http(
    core: client.CoreV1Api, namespace: str, sim: Simulator
) -> None:
    core.create_namespaced_pod(
        namespace,
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "image": "a"}]}},
    )
    wait_for(
        lambda: (status := _app_container(core, namespace, "p")) and status.state.running,
        what="the container to run",
    )
    _control(sim, "POST", "logs", {"namespace": namespace, "pod": "p", "lines": ["GET / 200"]})
    assert core.read_namespaced_pod_log("p", namespace, tail_lines=1) == "GET / 200\n"


def test_reset_returns_to_a_fresh_cluster(
    core: client.CoreV1Api, namespace: str, sim: Simulator
) -> None:
    sim.crash_loop(namespace)
    sim.set_api_down(True)
    _control(sim, "POST", "reset")
    names = {n.metadata.name for n in core.list_namespace().items}
    assert names == {"default", "kube-system"}


def test_module_entry_point_writes_a_usable_kubeconfig(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.kubesim", "--port", "0", "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert process.stdout is not None
        assert "kubesim listening on http://127.0.0.1:" in process.stdout.readline()
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        with client.ApiClient(configuration) as api:
            assert client.VersionApi(api).get_code().git_version.startswith("v1.")
        assert config.list_kube_config_contexts(str(kubeconfig))[1]["name"] == "aether-sim"
    finally:
        process.terminate()
        process.wait(timeout=10)
