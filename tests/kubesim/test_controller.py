"""The Deployment controller: ReplicaSets, labelled pods, status, rollouts, events, GC."""

from __future__ import annotations

from kubernetes import client, watch

from tests.kubesim.workloads import condition, deployment
from tests.polling import wait_for


def _available(
    apps: client.AppsV1Api, namespace: str, name: str, generation: int = 1
) -> client.V1Deployment:
    """Wait for a finished rollout, judged the way ``kubectl rollout status`` does."""

    def probe() -> client.V1Deployment | None:
        found = apps.read_namespaced_deployment(name, namespace)
        status = found.status
        progressing = condition(found, "Progressing")
        done = (
            status.observed_generation == generation
            and status.updated_replicas == found.spec.replicas
            and status.available_replicas == found.spec.replicas
            and status.replicas == found.spec.replicas
            and progressing is not None
            and progressing.reason == "NewReplicaSetAvailable"
        )
        return found if done else None

    return wait_for(probe, what=f"deployment {name} generation {generation} to be available")


def test_deployment_becomes_available(
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("web", replicas=2))
    found = _available(apps, namespace, "web")
    status = found.status
    assert (status.updated_replicas, status.ready_replicas, status.available_replicas) == (2, 2, 2)
    available = condition(found, "Available")
    assert (available.status, available.reason) == ("True", "MinimumReplicasAvailable")
    assert condition(found, "Progressing").status == "True"
    assert found.metadata.annotations["deployment.kubernetes.io/revision"] == "1"


def test_pods_are_labelled_and_owned_through_a_replica_set(
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    created = apps.create_namespaced_deployment(namespace, deployment("web", replicas=2))
    _available(apps, namespace, "web")
    (replica_set,) = apps.list_namespaced_replica_set(namespace).items
    owner = replica_set.metadata.owner_references[0]
    assert (owner.kind, owner.uid, owner.controller) == ("Deployment", created.metadata.uid, True)
    pods = core.list_namespaced_pod(namespace, label_selector="app=aether,app_name=web").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.metadata.labels["pod-template-hash"]
        assert pod.metadata.owner_references[0].uid == replica_set.metadata.uid
        assert pod.status.phase == "Running"
        assert pod.spec.node_name == "aether-sim-node"
        assert pod.status.init_container_statuses[0].state.terminated.reason == "Completed"
        assert pod.status.container_statuses[0].ready


def test_controller_writes_events_in_the_namespace(
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("web"))
    _available(apps, namespace, "web")
    events = core.list_namespaced_event(namespace, field_selector="involvedObject.kind=Deployment")
    (scaled,) = events.items
    assert scaled.reason == "ScalingReplicaSet"
    assert scaled.involved_object.name == "web"
    reasons = {e.reason for e in core.list_namespaced_event(namespace).items}
    assert {"SuccessfulCreate", "Scheduled", "Started"} <= reasons


def test_a_new_template_rolls_out_through_visible_intermediate_states(
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("web", replicas=2))
    first = _available(apps, namespace, "web")
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "node:22"}]}}}}
    apps.patch_namespaced_deployment("web", namespace, patch)
    intermediate = []
    stream = watch.Watch()
    for event in stream.stream(
        apps.list_namespaced_deployment,
        namespace,
        resource_version=first.metadata.resource_version,
        timeout_seconds=10,
    ):
        status = event["object"].status
        if status.observed_generation != 2:
            continue
        progressing = condition(event["object"], "Progressing")
        if progressing.reason == "NewReplicaSetAvailable":
            stream.stop()
        else:
            intermediate.append(status)
    assert intermediate, "the rollout jumped straight to its end state"
    assert any((s.available_replicas or 0) < (s.replicas or 0) for s in intermediate) or any(
        (s.updated_replicas or 0) < 2 for s in intermediate
    )
    final = _available(apps, namespace, "web", generation=2)
    assert final.metadata.annotations["deployment.kubernetes.io/revision"] == "2"

    def only_new_pods() -> list[client.V1Pod] | None:
        pods = core.list_namespaced_pod(namespace).items
        return pods if len(pods) == 2 else None

    pods = wait_for(only_new_pods, what="the old pods to go")
    assert {p.spec.containers[0].image for p in pods} == {"node:22"}


def test_recreate_strategy_replaces_pods(
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("web", strategy="Recreate"))
    _available(apps, namespace, "web")
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "node:22"}]}}}}
    apps.patch_namespaced_deployment("web", namespace, patch)
    _available(apps, namespace, "web", generation=2)
    images = {p.spec.containers[0].image for p in core.list_namespaced_pod(namespace).items}
    assert images == {"node:22"}


def test_scaling_changes_the_pod_count(
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("web", replicas=1))
    _available(apps, namespace, "web")
    apps.patch_namespaced_deployment("web", namespace, {"spec": {"replicas": 3}})
    _available(apps, namespace, "web", generation=2)
    assert len(core.list_namespaced_pod(namespace).items) == 3
    assert len(apps.list_namespaced_replica_set(namespace).items) == 1


def test_deleting_a_deployment_collects_its_replica_sets_and_pods(
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("web", replicas=2))
    _available(apps, namespace, "web")
    apps.delete_namespaced_deployment("web", namespace)
    wait_for(lambda: not core.list_namespaced_pod(namespace).items, what="pods to be collected")
    assert apps.list_namespaced_replica_set(namespace).items == []


def test_orphan_propagation_leaves_dependents(
    apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("web"))
    _available(apps, namespace, "web")
    apps.delete_namespaced_deployment("web", namespace, propagation_policy="Orphan")
    (replica_set,) = apps.list_namespaced_replica_set(namespace).items
    assert replica_set.metadata.owner_references is None
    assert len(core.list_namespaced_pod(namespace).items) == 1
