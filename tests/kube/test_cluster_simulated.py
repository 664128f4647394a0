"""What only a simulator can script: the API going down, exact log paging, restart thresholds."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import urllib3.exceptions
from kubernetes.client import ApiClient, ApiException, CoreV1Api

from chalicelib.kube import Cluster, api_client, is_unavailable
from chalicelib.manifests import workload_manifests
from infra.kubesim import Simulator
from tests.kube.harness import (
    NAMESPACE as APPS_NAMESPACE,
)
from tests.kube.harness import (
    PULL_TOKEN,
    SimHarness,
    deploy,
    finished,
    new_app_name,
    pod_names,
    wait_for,
)


def test_api_down_is_a_503_api_exception_and_a_retry_later_succeeds(
    harness: SimHarness, sim: Simulator
) -> None:
    spec = harness.spec(new_app_name())
    sim.set_api_down(True)
    calls = {
        "apply": lambda: deploy(harness, spec),
        "rollout": lambda: harness.cluster.rollout(spec.app_name, spec.deployment_id),
        "events": lambda: harness.cluster.events(spec.app_name),
        "logs": lambda: harness.cluster.logs(spec.app_name),
        "ping": harness.cluster.ping,
    }
    for name, call in calls.items():
        with pytest.raises(ApiException) as raised:
            call()
        assert raised.value.status == 503, name
        assert is_unavailable(raised.value), name

    sim.set_api_down(False)
    deploy(harness, spec)
    assert finished(harness, spec).phase == "succeeded"


def test_an_unreachable_api_is_a_urllib3_error(sim: Simulator, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
    kubeconfig.write_text(
        kubeconfig.read_text().replace(sim.url, f"http://127.0.0.1:{closed_port}")
    )
    cluster = Cluster(api_client(str(kubeconfig)), APPS_NAMESPACE)

    with pytest.raises(urllib3.exceptions.MaxRetryError) as raised:
        cluster.ping()

    assert is_unavailable(raised.value)


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_client_errors_are_not_unavailability(status: int) -> None:
    assert not is_unavailable(ApiException(status=status))
    assert not is_unavailable(ValueError("no"))
    assert is_unavailable(ApiException(status=0))
    assert is_unavailable(ApiException(status=500))


def test_applying_into_a_missing_namespace_is_a_404_and_creates_nothing(
    sim: Simulator, sim_api: ApiClient
) -> None:
    cluster = Cluster(sim_api, "nowhere")
    spec = SimHarness(sim, sim_api).spec(new_app_name())
    manifests = workload_manifests(spec, PULL_TOKEN)
    for manifest in manifests:
        manifest["metadata"]["namespace"] = "nowhere"

    with pytest.raises(ApiException) as raised:
        cluster.apply(manifests)

    assert raised.value.status == 404
    names = {n.metadata.name for n in CoreV1Api(sim_api).list_namespace().items}
    assert "nowhere" not in names


def test_apply_refuses_another_namespace_or_an_unexpected_kind(harness: SimHarness) -> None:
    manifests = workload_manifests(harness.spec(new_app_name()), PULL_TOKEN)
    manifests[0]["metadata"]["namespace"] = "kube-system"
    with pytest.raises(ValueError, match="not for namespace"):
        harness.cluster.apply(manifests)
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    with pytest.raises(ValueError, match="unexpected kind"):
        harness.cluster.apply([config_map])


def test_a_few_restarts_are_not_yet_a_failure(harness: SimHarness, sim_api: ApiClient) -> None:
    patient = Cluster(sim_api, APPS_NAMESPACE, crash_restarts=1000)
    spec = harness.spec(new_app_name())
    harness.arm("crash-loop", spec.app_name)
    deploy(harness, spec)
    core = CoreV1Api(sim_api)

    def restarted() -> bool:
        pods = core.list_namespaced_pod(APPS_NAMESPACE, label_selector=f"app_name={spec.app_name}")
        return any(
            status.restart_count >= 1
            for pod in pods.items
            for status in pod.status.container_statuses or []
        )

    wait_for(restarted, timeout=harness.timeout, what="a restart")
    rollout = patient.rollout(spec.app_name, spec.deployment_id)
    assert (rollout.phase, rollout.ready_replicas) == ("rolling_out", 0)


def test_paging_logs_with_the_last_timestamp_has_no_gaps_or_duplicates(
    harness: SimHarness, sim: Simulator
) -> None:
    spec = harness.spec(new_app_name(), replicas=2)
    deploy(harness, spec)
    finished(harness, spec)
    pods = pod_names(harness, spec.app_name)
    assert len(pods) == 2

    seen = harness.cluster.logs(spec.app_name)
    since = seen[-1].ts
    for round_ in range(4):
        for pod in pods:
            sim.append_log(APPS_NAMESPACE, pod, [f"{pod} round {round_}"], container="app")
        page = harness.cluster.logs(spec.app_name, since=since)
        if page:
            since = page[-1].ts
        seen += page

    messages = [line.message for line in seen if "round" in line.message]
    assert sorted(messages) == sorted(f"{pod} round {r}" for pod in pods for r in range(4))
    keys = [(line.ts, line.pod, line.container, line.message) for line in seen]
    assert len(keys) == len(set(keys))


def test_lines_newer_than_the_settle_horizon_wait_for_the_next_page(
    harness: SimHarness, sim_api: ApiClient
) -> None:
    spec = harness.spec(new_app_name())
    deploy(harness, spec)
    finished(harness, spec)
    harness.produce_logs(spec.app_name, 3)
    cautious = Cluster(sim_api, APPS_NAMESPACE, log_settle_seconds=3600)

    assert cautious.logs(spec.app_name) == []
    assert len(harness.cluster.logs(spec.app_name)) >= 3


def test_logs_of_one_deployment_only(harness: SimHarness) -> None:
    app = new_app_name()
    first = harness.spec(app)
    deploy(harness, first)
    finished(harness, first)
    second = harness.spec(app)
    deploy(harness, second)
    finished(harness, second)
    wait_for(
        lambda: not pod_names(harness, app, first.deployment_id),
        timeout=harness.timeout,
        what="the first deployment's pods to go",
    )
    harness.produce_logs(app, 2)

    assert harness.cluster.logs(app, deployment_id=first.deployment_id) == []
    mine = harness.cluster.logs(app, deployment_id=second.deployment_id)
    assert {line.pod for line in mine} == set(pod_names(harness, app, second.deployment_id))


def test_events_leave_out_an_app_whose_name_extends_this_one(harness: SimHarness) -> None:
    app = new_app_name()
    mine, theirs = harness.spec(app), harness.spec(f"{app}-bcd")
    deploy(harness, mine)
    deploy(harness, theirs)
    finished(harness, mine)
    finished(harness, theirs)

    names = {event.object_name for event in harness.cluster.events(app)}

    assert app in names
    assert not any(name.startswith(f"{app}-bcd") for name in names)
