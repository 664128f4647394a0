"""batch/v1 Jobs: the official client's create, read, list, watch and delete; the controller's
labelled, owned pod; status, conditions, backoffLimit, activeDeadlineSeconds and the TTL."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client, dynamic, watch
from kubernetes.client.exceptions import ApiException

from infra.kubesim import Simulator
from tests.polling import wait_for


@pytest.fixture
def batch(sim: Simulator, api_client: client.ApiClient) -> client.BatchV1Api:
    return client.BatchV1Api(api_client)


def job(
    name: str,
    *,
    backoff_limit: int = 0,
    deadline: int | None = None,
    ttl: int | None = None,
    restart_policy: str = "Never",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "backoffLimit": backoff_limit,
        "template": {
            "metadata": {"labels": labels or {"app": "aether-job"}},
            "spec": {
                "restartPolicy": restart_policy,
                "initContainers": [{"name": "fetch", "image": "aether-fetcher:1"}],
                "containers": [
                    {"name": "app", "image": "aether-nodejs:24-slim", "command": ["true"]}
                ],
            },
        },
    }
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}


def finished(batch: client.BatchV1Api, namespace: str, name: str) -> client.V1Job:
    def probe() -> client.V1Job | None:
        found = batch.read_namespaced_job(name, namespace)
        conditions = found.status.conditions or []
        return found if any(c.type in ("Complete", "Failed") for c in conditions) else None

    return wait_for(probe, what=f"job {name} to finish")


def condition(found: client.V1Job) -> client.V1JobCondition:
    (only,) = found.status.conditions
    return only


def job_pods(core: client.CoreV1Api, namespace: str, name: str) -> list[client.V1Pod]:
    selector = f"batch.kubernetes.io/job-name={name}"
    return list(core.list_namespaced_pod(namespace, label_selector=selector).items)


def test_a_job_runs_one_labelled_owned_pod_to_completion(
    batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    created = batch.create_namespaced_job(namespace, job("migrate", labels={"run": "r1"}))
    uid = created.metadata.uid
    assert created.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    assert created.spec.template.metadata.labels["job-name"] == "migrate"

    done = finished(batch, namespace, "migrate")
    assert (condition(done).type, condition(done).status) == ("Complete", "True")
    assert (done.status.succeeded, done.status.failed, done.status.active) == (1, None, None)
    assert done.status.start_time is not None and done.status.completion_time is not None
    (pod,) = job_pods(core, namespace, "migrate")
    assert pod.metadata.labels["run"] == "r1"
    owner = pod.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller) == ("Job", "migrate", uid, True)
    assert pod.status.phase == "Succeeded"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    assert "container app completed" in core.read_namespaced_pod_log(
        pod.metadata.name, namespace, container="app"
    )
    reasons = [e.reason for e in core.list_namespaced_event(namespace).items]
    assert {"SuccessfulCreate", "Completed"} <= set(reasons)


def test_a_failing_pod_fails_the_job_at_its_backoff_limit(
    sim: Simulator, batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    sim.crash_loop(namespace, label_selector="app=aether-job")
    batch.create_namespaced_job(namespace, job("once", backoff_limit=0))
    done = finished(batch, namespace, "once")
    assert (condition(done).type, condition(done).reason) == ("Failed", "BackoffLimitExceeded")
    assert done.status.failed == 1 and done.status.succeeded is None
    (pod,) = job_pods(core, namespace, "once")
    assert pod.status.phase == "Failed"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 1


def test_a_job_retries_failed_pods_up_to_its_backoff_limit(
    sim: Simulator, batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    sim.crash_loop(namespace, label_selector="app=aether-job")
    batch.create_namespaced_job(namespace, job("twice", backoff_limit=1))
    done = finished(batch, namespace, "twice")
    assert condition(done).reason == "BackoffLimitExceeded"
    assert done.status.failed == 2
    assert len(job_pods(core, namespace, "twice")) == 2


def test_an_init_container_that_fails_fails_a_never_restarting_pod(
    sim: Simulator, batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    sim.fail_init_containers(namespace, label_selector="app=aether-job")
    batch.create_namespaced_job(namespace, job("fetch-fails"))
    assert condition(finished(batch, namespace, "fetch-fails")).type == "Failed"
    (pod,) = job_pods(core, namespace, "fetch-fails")
    assert pod.status.phase == "Failed"
    assert pod.status.init_container_statuses[0].state.terminated.exit_code == 1


def test_past_its_active_deadline_a_job_fails_and_its_pod_is_deleted(
    sim: Simulator, batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    sim.never_ready(namespace, label_selector="app=aether-job")
    batch.create_namespaced_job(namespace, job("slow", deadline=1))
    done = finished(batch, namespace, "slow")
    assert (condition(done).type, condition(done).reason) == ("Failed", "DeadlineExceeded")
    assert done.status.failed == 1
    assert job_pods(core, namespace, "slow") == []


def test_a_finished_job_goes_with_its_pods_after_its_ttl(
    batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job("brief", ttl=0))

    def gone() -> bool:
        return not batch.list_namespaced_job(namespace).items

    wait_for(gone, what="the job to be collected")
    wait_for(lambda: not job_pods(core, namespace, "brief"), what="its pod to be collected")


def test_deleting_a_job_orphans_its_pods_unless_asked_to_propagate(
    batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job("kept"))
    batch.create_namespaced_job(namespace, job("gone"))
    finished(batch, namespace, "kept")
    finished(batch, namespace, "gone")
    batch.delete_namespaced_job("kept", namespace)
    batch.delete_namespaced_job("gone", namespace, propagation_policy="Background")
    (orphan,) = job_pods(core, namespace, "kept")
    assert not orphan.metadata.owner_references
    assert job_pods(core, namespace, "gone") == []
    with pytest.raises(ApiException) as missing:
        batch.read_namespaced_job("gone", namespace)
    assert missing.value.status == 404


def test_jobs_are_listed_by_label_and_watched(batch: client.BatchV1Api, namespace: str) -> None:
    labelled = job("labelled")
    labelled["metadata"]["labels"] = {"kind": "run"}
    batch.create_namespaced_job(namespace, labelled)
    batch.create_namespaced_job(namespace, job("other"))
    listed = batch.list_namespaced_job(namespace, label_selector="kind=run")
    assert [j.metadata.name for j in listed.items] == ["labelled"]
    seen: list[tuple[str, str]] = []
    stream = watch.Watch().stream(
        batch.list_namespaced_job,
        namespace,
        label_selector="kind=run",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=5,
    )
    for event in stream:
        conditions = event["object"].status.conditions or []
        seen.append((event["type"], conditions[0].type if conditions else ""))
        if conditions:
            break
    assert seen[-1] == ("MODIFIED", "Complete")


def test_a_job_refuses_a_template_that_restarts_always_or_a_change_of_template(
    batch: client.BatchV1Api, namespace: str
) -> None:
    with pytest.raises(ApiException) as refused:
        batch.create_namespaced_job(namespace, job("web", restart_policy="Always"))
    assert refused.value.status == 422
    assert "restartPolicy" in refused.value.body
    batch.create_namespaced_job(namespace, job("fixed"))
    with pytest.raises(ApiException) as immutable:
        batch.patch_namespaced_job(
            "fixed",
            namespace,
            {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "x:1"}]}}}},
        )
    assert immutable.value.status == 422
    assert "immutable" in immutable.value.body
    with pytest.raises(ApiException) as negative:
        batch.create_namespaced_job(namespace, job("bad", deadline=0))
    assert negative.value.status == 422
    parallel = job("parallel")
    parallel["spec"]["completions"] = 3
    selected = job("selected")
    selected["spec"]["selector"] = {"matchLabels": {"app": "aether-job"}}
    for unmodelled in (parallel, selected):
        with pytest.raises(ApiException) as refused_too:
            batch.create_namespaced_job(namespace, unmodelled)
        assert refused_too.value.status == 422, unmodelled["metadata"]["name"]


def test_discovery_serves_the_batch_group(sim: Simulator, api_client: client.ApiClient) -> None:
    resources = dynamic.DynamicClient(api_client).resources
    jobs = resources.get(api_version="batch/v1", kind="Job")
    assert jobs.get(namespace="default").items == []
