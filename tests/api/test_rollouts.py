"""Deployments through the simulated cluster: pending → rolling_out → succeeded | failed."""

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import APPS_NAMESPACE, Api
from tests.uploads import random_bytes, upload
from tests.verification.delivery import deliver_pending_events

pytestmark = pytest.mark.usefixtures("healthy_cluster")


@pytest.fixture
def app_name(api: Api, unique_name: str) -> str:
    # Service names must start with a letter; the fixture names do.
    api.post("/apps", {"name": unique_name})
    return unique_name


def verified_digest(api: Api, app_name: str) -> str:
    digest = upload(api, app_name, random_bytes())
    deliver_pending_events()
    return digest


def wait_for(
    api: Api, deployment_id: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Read the deployment (each read reconciles) until ``done``, for at most a minute: a
    loaded machine starts pods slowly, and the bound only stops a test that would hang."""
    body: dict[str, Any] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = api.get(f"/deployments/{deployment_id}").json
        if done(body):
            return body
        time.sleep(0.1)
    raise AssertionError(f"deployment never got there: {body}")


def finished(body: dict[str, Any]) -> bool:
    return body["status"] in ("succeeded", "failed")


def deploy(api: Api, app_name: str, digest: str) -> dict[str, Any]:
    reply = api.post("/deployments", {"app_name": app_name, "artifact_digest": digest})
    assert reply.status == 201, reply.body
    return dict(reply.json)


def test_a_deployment_rolls_out_to_succeeded(api: Api, app_name: str) -> None:
    created = deploy(api, app_name, verified_digest(api, app_name))
    assert created["status"] == "rolling_out"
    done = wait_for(api, created["deployment_id"], finished)
    assert done["status"] == "succeeded", done
    phases = [event["phase"] for event in done["events"]]
    own = [phase for phase in phases if not phase.startswith("k8s:")]
    assert own == ["rolling_out", "succeeded"]
    assert any(phase.startswith("k8s:") for phase in phases)


def test_the_workload_carries_no_url_or_secret(
    api: Api, app_name: str, kube_simulator: Any
) -> None:
    import json

    from chalicelib.kube import api_client

    created = deploy(api, app_name, verified_digest(api, app_name))
    with api_client(str(kube_simulator.kubeconfig)) as client:
        import kubernetes

        apps = kubernetes.client.AppsV1Api(client)
        workload = apps.read_namespaced_deployment(app_name, APPS_NAMESPACE).to_dict()
    text = json.dumps(workload, default=str)
    assert "X-Amz-" not in text
    assert "aet_" not in text
    assert created["deployment_id"] in text


def test_a_rollout_past_its_deadline_fails_with_the_reason(
    api: Api, app_name: str, kube_simulator: Any
) -> None:
    kube_simulator.never_ready(APPS_NAMESPACE, app_name)
    created = deploy(api, app_name, verified_digest(api, app_name))
    done = wait_for(api, created["deployment_id"], finished)
    assert done["status"] == "failed"
    assert "ProgressDeadlineExceeded" in done["reason"]
    assert [e["phase"] for e in done["events"] if not e["phase"].startswith("k8s:")][-1] == "failed"


def test_a_failing_init_container_fails_the_deployment(
    api: Api, app_name: str, kube_simulator: Any
) -> None:
    kube_simulator.fail_init_containers(APPS_NAMESPACE, app_name)
    created = deploy(api, app_name, verified_digest(api, app_name))
    done = wait_for(api, created["deployment_id"], finished)
    assert done["status"] == "failed"
    assert "init container" in done["reason"]


def test_a_crash_looping_app_fails_the_deployment(
    api: Api, app_name: str, kube_simulator: Any
) -> None:
    kube_simulator.crash_loop(APPS_NAMESPACE, app_name)
    created = deploy(api, app_name, verified_digest(api, app_name))
    done = wait_for(api, created["deployment_id"], finished)
    assert done["status"] == "failed"


def test_kubernetes_down_is_503_and_the_deployment_is_kept(
    api: Api, app_name: str, kube_simulator: Any
) -> None:
    digest = verified_digest(api, app_name)
    kube_simulator.set_api_down(True)
    reply = api.post("/deployments", {"app_name": app_name, "artifact_digest": digest})
    assert reply.status == 503
    assert reply.json["code"] == "service_unavailable"
    history = api.get(f"/apps/{app_name}/deployments").json["deployments"]
    assert [d["status"] for d in history] == ["pending"]
    for _ in range(3):  # reads retry; the reason is said once
        assert api.get(f"/deployments/{history[0]['deployment_id']}").status == 503
    from chalicelib.deployments import events

    waiting = [e.message for e in events(history[0]["deployment_id"])]
    assert waiting == ["the cluster is unreachable; retrying later"]
    kube_simulator.set_api_down(False)
    retried = api.post("/deployments", {"app_name": app_name, "artifact_digest": digest})
    assert retried.status == 200  # the same deployment, not a second one
    assert retried.json["deployment_id"] == history[0]["deployment_id"]
    assert wait_for(api, history[0]["deployment_id"], finished)["status"] == "succeeded"


@pytest.mark.parametrize("claim", ["first-release", "next-release", "restart"])
def test_a_claimed_release_is_never_judged_before_its_claimer_applies_it(
    api: Api, app_name: str, kube_simulator: Any, claim: str
) -> None:
    """No Deployment yet, the previous release's Deployment, or a restarting release's pods
    from before the restart: none is the claim's rollout until its claimer has applied it."""
    from datetime import timedelta

    from chalicelib.manifests import RESTARTED_ANNOTATION
    from chalicelib.records import Deployment, utcnow
    from infra.kubesim.resources import DEPLOYMENTS

    if claim != "first-release":
        first = api.post(
            "/deployments",
            {"app_name": app_name, "artifact_digest": verified_digest(api, app_name)},
        )
        assert wait_for(api, first.json["deployment_id"], finished)["status"] == "succeeded"
    if claim == "restart":
        record = Deployment.get(first.json["deployment_id"])
        # What the restart's own claim writes before it applies.
        actions = [Deployment.restarted_at.set(utcnow()), Deployment.applied_at.remove()]
    else:
        digest = verified_digest(api, app_name)
        kube_simulator.set_api_down(True)
        reply = api.post("/deployments", {"app_name": app_name, "artifact_digest": digest})
        assert reply.status == 503
        kube_simulator.set_api_down(False)
        pending = api.get(f"/apps/{app_name}/deployments").json["deployments"][0]
        record = Deployment.get(pending["deployment_id"])
        actions = []
    # What another reader sees while the claimer (the schedule, say) is still applying.
    record.update(actions=[Deployment.status.set("rolling_out"), *actions])
    for _ in range(3):
        assert api.get(f"/deployments/{record.deployment_id}").json["status"] == "rolling_out"
    # A claimer that never applied (it died): after the grace the claim is taken over.
    record.update(actions=[Deployment.updated_at.set(utcnow() - timedelta(minutes=3))])
    assert wait_for(api, record.deployment_id, finished)["status"] == "succeeded"
    if claim == "restart":
        workload = kube_simulator.store.get(DEPLOYMENTS, APPS_NAMESPACE, app_name)
        assert RESTARTED_ANNOTATION in workload["spec"]["template"]["metadata"]["annotations"]


def test_a_newer_deployment_supersedes_one_in_flight(
    api: Api, app_name: str, kube_simulator: Any
) -> None:
    kube_simulator.never_ready(APPS_NAMESPACE, app_name)
    first = deploy(api, app_name, verified_digest(api, app_name))
    kube_simulator.clear_faults()
    second = deploy(api, app_name, verified_digest(api, app_name))
    assert wait_for(api, second["deployment_id"], finished)["status"] == "succeeded"
    older = wait_for(api, first["deployment_id"], finished)
    assert older["status"] == "failed"
    assert second["deployment_id"] in older["reason"]


def test_the_schedule_advances_deployments_nobody_reads(
    api: Api, app_name: str, control_plane: Any
) -> None:
    created = deploy(api, app_name, verified_digest(api, app_name))
    from chalicelib.records import Deployment
    from infra.local.relay import scheduled_event

    for _ in range(100):
        control_plane.reconcile_deployments(scheduled_event(), None)
        if Deployment.get(created["deployment_id"]).status == "succeeded":
            break
        time.sleep(0.1)
    assert Deployment.get(created["deployment_id"]).status == "succeeded"


def test_rollback_redeploys_the_previous_good_artifact(api: Api, app_name: str) -> None:
    first_digest = verified_digest(api, app_name)
    first = deploy(api, app_name, first_digest)
    wait_for(api, first["deployment_id"], finished)
    second = deploy(api, app_name, verified_digest(api, app_name))
    wait_for(api, second["deployment_id"], finished)

    rolled = api.post(f"/apps/{app_name}/rollback", {})
    assert rolled.status == 201, rolled.body
    assert rolled.json["artifact_digest"] == first_digest
    assert rolled.json["rollback_of"] == first["deployment_id"]
    assert wait_for(api, rolled.json["deployment_id"], finished)["status"] == "succeeded"

    explicit = api.post(f"/apps/{app_name}/rollback", {"to": second["deployment_id"]})
    assert explicit.json["artifact_digest"] == second["artifact_digest"]


def test_rollback_without_history_is_a_conflict(api: Api, app_name: str) -> None:
    reply = api.post(f"/apps/{app_name}/rollback", {})
    assert reply.status == 409
    assert reply.json["code"] == "conflict"


def test_rollback_to_an_unknown_deployment_is_not_found(api: Api, app_name: str) -> None:
    assert api.post(f"/apps/{app_name}/rollback", {"to": "nope"}).status == 404


def test_logs_page_with_since_and_tail(api: Api, app_name: str, kube_simulator: Any) -> None:
    import kubernetes

    from chalicelib.kube import api_client

    created = deploy(api, app_name, verified_digest(api, app_name))
    wait_for(api, created["deployment_id"], finished)
    with api_client(str(kube_simulator.kubeconfig)) as client:
        pods = kubernetes.client.CoreV1Api(client).list_namespaced_pod(
            APPS_NAMESPACE, label_selector=f"app_name={app_name}"
        )
    pod = pods.items[0].metadata.name
    kube_simulator.append_log(APPS_NAMESPACE, pod, ["one", "two", "three"], container="app")

    def read(query: str = "") -> dict[str, Any]:
        reply = api.get(f"/apps/{app_name}/logs{query}")
        assert reply.status == 200, reply.body
        return dict(reply.json)

    lines: list[dict[str, Any]] = []
    for _ in range(50):  # lines show once they are older than the settle horizon
        lines = read()["lines"]
        if any(line["message"] == "three" for line in lines):
            break
        time.sleep(0.1)
    messages = [line["message"] for line in lines if line["container"] == "app"]
    assert messages[-3:] == ["one", "two", "three"]
    assert {line["pod"] for line in lines} == {pod}

    tail = read("?tail=2")
    assert [line["message"] for line in tail["lines"]] == ["two", "three"]
    after = read(f"?since={tail['next_since']}")
    assert after["lines"] == []
    assert after["next_since"] == tail["next_since"]
    middle = next(line["ts"] for line in lines if line["message"] == "one")
    rest = read(f"?since={middle}")["lines"]
    assert [line["message"] for line in rest] == ["two", "three"]
    # The first moment RFC 3339 can write is before every line: all of them, not an overflow.
    everything = read("?since=0001-01-01T00:00:00Z")["lines"]
    assert [line["message"] for line in everything if line["container"] == "app"][-3:] == [
        "one",
        "two",
        "three",
    ]


@pytest.mark.parametrize("query", ["since=yesterday", "since=2026-01-01T00:00:00", "tail=0"])
def test_logs_reject_bad_queries(api: Api, app_name: str, query: str) -> None:
    reply = api.get(f"/apps/{app_name}/logs?{query}")
    assert reply.status == 400
    assert reply.json["code"] == "bad_request"


@pytest.fixture
def misconfigured(
    control_plane: Any, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[None]:
    """The control plane with one setting wrong, restored afterwards."""
    name, value = request.param
    if value is None:
        monkeypatch.delenv(name)
    else:
        monkeypatch.setenv(name, value)
    caches = (control_plane.get_settings, control_plane.get_data_plane)
    for cached in caches:
        cached.cache_clear()
    yield
    monkeypatch.undo()
    for cached in caches:
        cached.cache_clear()


@pytest.mark.parametrize(
    ("misconfigured", "reason"),
    [
        (("AETHER_DEFAULT_NAMESPACE", "no-such-namespace"), "404"),
        (("AETHER_PUBLIC_API_URL", None), "artifact_url"),
    ],
    indirect=["misconfigured"],
)
def test_a_workload_the_cluster_refuses_fails_once_with_the_reason(
    api: Api, app_name: str, misconfigured: None, reason: str
) -> None:
    digest = verified_digest(api, app_name)
    reply = api.post("/deployments", {"app_name": app_name, "artifact_digest": digest})
    assert reply.status == 201, reply.body
    assert reply.json["status"] == "failed"
    assert reason in reply.json["reason"]
    assert api.get(f"/deployments/{reply.json['deployment_id']}").json["status"] == "failed"
