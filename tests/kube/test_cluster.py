"""The Cluster class through the official client: apply, rollout, events, logs.

Every test here takes a ``harness``: the simulator (conftest.py), or a kind cluster when
test_kind.py re-runs this module against one.
"""

from __future__ import annotations

from datetime import timedelta

from kubernetes.client import AppsV1Api, CoreV1Api

from tests.kube.harness import (
    PULL_TOKEN,
    Harness,
    deploy,
    finished,
    new_app_name,
    pod_names,
    wait_for,
)


def _versions(harness: Harness, app: str) -> dict[str, tuple[str, int | None]]:
    core, apps = CoreV1Api(harness.admin), AppsV1Api(harness.admin)
    deployment = apps.read_namespaced_deployment(app, harness.namespace)
    service = core.read_namespaced_service(app, harness.namespace)
    secret = core.read_namespaced_secret(f"{app}-pull", harness.namespace)
    return {
        "deployment": (deployment.metadata.resource_version, deployment.metadata.generation),
        "service": (service.metadata.resource_version, None),
        "secret": (secret.metadata.resource_version, None),
    }


def test_apply_creates_the_secret_deployment_and_service(harness: Harness) -> None:
    app = new_app_name()
    spec = harness.spec(app)
    deploy(harness, spec)

    core, apps = CoreV1Api(harness.admin), AppsV1Api(harness.admin)
    deployment = apps.read_namespaced_deployment(app, harness.namespace)
    assert deployment.metadata.labels["deployment_id"] == spec.deployment_id
    assert deployment.metadata.annotations["aether.dev/artifact-digest"] == spec.digest
    assert deployment.metadata.managed_fields is None or any(
        entry.manager == "aether" for entry in deployment.metadata.managed_fields
    )
    service = core.read_namespaced_service(app, harness.namespace)
    assert service.spec.selector == {"app": "aether", "app_name": app}
    secret = core.read_namespaced_secret(f"{app}-pull", harness.namespace)
    assert secret.data is not None and "token" in secret.data


def test_reapplying_the_same_spec_changes_nothing(harness: Harness) -> None:
    app = new_app_name()
    spec = harness.spec(app)
    deploy(harness, spec)
    finished(harness, spec)
    before = _versions(harness, app)

    deploy(harness, spec)

    assert _versions(harness, app) == before


def test_rollout_reaches_succeeded(harness: Harness) -> None:
    app = new_app_name()
    spec = harness.spec(app, replicas=2)
    deploy(harness, spec)

    rollout = finished(harness, spec)

    assert rollout.phase == "succeeded", rollout.message
    assert (rollout.ready_replicas, rollout.replicas) == (2, 2)
    assert len(pod_names(harness, app, spec.deployment_id)) == 2


def test_a_new_deployment_id_rolls_the_same_deployment(harness: Harness) -> None:
    app = new_app_name()
    first = harness.spec(app)
    deploy(harness, first)
    assert finished(harness, first).phase == "succeeded"

    second = harness.spec(app)
    deploy(harness, second)

    apps = AppsV1Api(harness.admin)
    deployment = apps.read_namespaced_deployment(app, harness.namespace)
    assert deployment.metadata.generation == 2
    assert finished(harness, second).phase == "succeeded"
    wait_for(
        lambda: not pod_names(harness, app, first.deployment_id),
        timeout=harness.timeout,
        what="the first deployment's pods to go",
    )
    assert len(pod_names(harness, app, second.deployment_id)) == 1


def test_an_older_deployment_reports_it_was_superseded(harness: Harness) -> None:
    app = new_app_name()
    first, second = harness.spec(app), harness.spec(app)
    deploy(harness, first)
    deploy(harness, second)

    rollout = harness.cluster.rollout(app, first.deployment_id)

    assert rollout.phase == "superseded"
    assert rollout.message == f"superseded by {second.deployment_id}"


def test_progress_deadline_exceeded_fails_with_the_reason(harness: Harness) -> None:
    app = new_app_name()
    spec = harness.spec(app, fault="never-ready")
    harness.arm("never-ready", app)
    deploy(harness, spec)

    rollout = finished(harness, spec)

    assert rollout.phase == "failed"
    assert rollout.message.startswith("ProgressDeadlineExceeded: ")
    assert "not ready" in rollout.message


def test_a_failing_init_container_fails_the_rollout(harness: Harness) -> None:
    app = new_app_name()
    spec = harness.spec(app, fault="init-failure")
    harness.arm("init-failure", app)
    deploy(harness, spec)

    rollout = finished(harness, spec)

    assert rollout.phase == "failed"
    assert "init container fetch failed" in rollout.message
    assert "last exit code" in rollout.message


def test_a_crash_loop_fails_the_rollout(harness: Harness) -> None:
    app = new_app_name()
    spec = harness.spec(app, fault="crash-loop")
    harness.arm("crash-loop", app)
    deploy(harness, spec)

    rollout = finished(harness, spec)

    assert rollout.phase == "failed"
    assert "container app is crash-looping" in rollout.message


def test_rollout_of_a_deleted_deployment_is_failed(harness: Harness) -> None:
    app = new_app_name()
    spec = harness.spec(app)
    deploy(harness, spec)
    AppsV1Api(harness.admin).delete_namespaced_deployment(app, harness.namespace)

    rollout = harness.cluster.rollout(app, spec.deployment_id)

    assert (rollout.phase, rollout.message) == ("failed", f"Deployment {app} not found")


def test_events_cover_the_deployment_its_replicasets_and_pods(harness: Harness) -> None:
    app, neighbour = new_app_name(), new_app_name()
    spec = harness.spec(app)
    deploy(harness, spec)
    deploy(harness, harness.spec(neighbour))
    finished(harness, spec)

    def enough() -> list[object] | None:
        events = harness.cluster.events(app)
        kinds = {event.object_kind for event in events}
        return events if {"Deployment", "ReplicaSet", "Pod"} <= kinds else None

    events = wait_for(enough, timeout=harness.timeout, what="events of all three kinds")

    assert all(e.object_name == app or e.object_name.startswith(f"{app}-") for e in events)
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
    reasons = {event.reason for event in events}
    assert {"ScalingReplicaSet", "SuccessfulCreate", "Scheduled"} <= reasons


def test_logs_with_since_and_tail(harness: Harness) -> None:
    app = new_app_name()
    spec = harness.spec(app)
    deploy(harness, spec)
    finished(harness, spec)
    harness.produce_logs(app, 6)

    everything = wait_for(
        lambda: (
            lines
            if len(lines := [x for x in harness.cluster.logs(app) if x.container == "app"]) >= 6
            else None
        ),
        timeout=harness.timeout,
        what="six lines from the app",
    )
    assert all(line.pod in pod_names(harness, app) for line in everything)
    assert [line.ts for line in everything] == sorted(line.ts for line in everything)

    since = everything[2].ts
    later = [line for line in harness.cluster.logs(app, since=since) if line.container == "app"]
    expected = [line for line in everything if line.ts > since]
    assert later[: len(expected)] == expected
    assert all(line.ts > since for line in later)

    tail = harness.cluster.logs(app, tail=2)
    assert len(tail) == 2
    assert tail[0].ts <= tail[1].ts

    assert harness.cluster.logs(app, since=everything[-1].ts + timedelta(days=1)) == []
    assert harness.cluster.logs(app, deployment_id="not-this-one") == []


def test_the_pull_token_reaches_the_cluster_only_in_the_secret(harness: Harness) -> None:
    app = new_app_name()
    spec = harness.spec(app)
    deploy(harness, spec)

    deployment = AppsV1Api(harness.admin).read_namespaced_deployment(app, harness.namespace)
    assert PULL_TOKEN not in str(deployment.to_dict())


def test_ping_answers(harness: Harness) -> None:
    harness.cluster.ping()
