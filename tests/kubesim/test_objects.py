"""CRUD, defaults and Status errors through the official client, over real HTTP."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from infra.kubesim import Simulator
from infra.kubesim.resources import REPLICA_SETS
from infra.kubesim.store import Store
from tests.kubesim.workloads import deployment, update_with_retry


def test_version_is_served(api_client: client.ApiClient, sim: Simulator) -> None:
    info = client.VersionApi(api_client).get_code()
    assert info.major == "1"
    assert info.git_version.startswith("v1.")


def test_discovery_lists_resources(api_client: client.ApiClient, sim: Simulator) -> None:
    resources = client.AppsV1Api(api_client).get_api_resources()
    assert "deployments" in {r.name for r in resources.resources}
    groups = client.ApisApi(api_client).get_api_versions()
    assert [g.name for g in groups.groups] == ["apps", "batch"]


def test_namespaces_are_created_listed_and_deleted(core: client.CoreV1Api) -> None:
    created = core.create_namespace({"metadata": {"name": "team-a"}})
    assert created.status.phase == "Active"
    assert created.metadata.uid and created.metadata.creation_timestamp
    names = {n.metadata.name for n in core.list_namespace().items}
    assert {"default", "kube-system", "team-a"} <= names
    core.delete_namespace("team-a")
    with pytest.raises(ApiException) as missing:
        core.read_namespace("team-a")
    assert missing.value.status == 404


def test_deleting_a_namespace_deletes_its_objects(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "settings"}})
    core.delete_namespace(namespace)
    core.create_namespace({"metadata": {"name": namespace}})
    assert core.list_namespaced_config_map(namespace).items == []


def test_creating_in_a_missing_namespace_is_not_found(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as error:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert error.value.status == 404


@pytest.mark.parametrize(
    ("create", "read", "replace", "delete", "body"),
    [
        (
            "create_namespaced_config_map",
            "read_namespaced_config_map",
            "replace_namespaced_config_map",
            "delete_namespaced_config_map",
            {"metadata": {"name": "obj"}, "data": {"k": "v"}},
        ),
        (
            "create_namespaced_secret",
            "read_namespaced_secret",
            "replace_namespaced_secret",
            "delete_namespaced_secret",
            {"metadata": {"name": "obj"}, "data": {"k": "dg=="}},
        ),
        (
            "create_namespaced_service",
            "read_namespaced_service",
            "replace_namespaced_service",
            "delete_namespaced_service",
            {"metadata": {"name": "obj"}, "spec": {"ports": [{"port": 80}]}},
        ),
        (
            "create_namespaced_pod",
            "read_namespaced_pod",
            "replace_namespaced_pod",
            "delete_namespaced_pod",
            {"metadata": {"name": "obj"}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}},
        ),
        (
            "create_namespaced_event",
            "read_namespaced_event",
            "replace_namespaced_event",
            "delete_namespaced_event",
            {"metadata": {"name": "obj"}, "involvedObject": {"name": "x"}, "reason": "R"},
        ),
    ],
)
def test_core_kinds_support_create_get_list_replace_delete(
    core: client.CoreV1Api,
    namespace: str,
    create: str,
    read: str,
    replace: str,
    delete: str,
    body: dict[str, object],
) -> None:
    created = getattr(core, create)(namespace, body)
    assert created.metadata.resource_version
    fetched = getattr(core, read)("obj", namespace)
    assert fetched.metadata.uid == created.metadata.uid
    list_name = create.replace("create_", "list_")
    assert [o.metadata.name for o in getattr(core, list_name)(namespace).items] == ["obj"]
    # A pod's status changes under us (the kubelet runs it), so this retries on 409.
    replaced = update_with_retry(
        lambda: getattr(core, read)("obj", namespace),
        lambda obj: setattr(obj.metadata, "labels", {"changed": "yes"}),
        lambda obj: getattr(core, replace)("obj", namespace, obj),
    )
    assert replaced.metadata.labels == {"changed": "yes"}
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    getattr(core, delete)("obj", namespace)
    with pytest.raises(ApiException) as missing:
        getattr(core, read)("obj", namespace)
    assert missing.value.status == 404


def test_deployments_support_create_get_list_replace_delete(
    apps: client.AppsV1Api, namespace: str
) -> None:
    created = apps.create_namespaced_deployment(namespace, deployment("web"))
    assert created.metadata.generation == 1
    assert created.spec.strategy.type == "RollingUpdate"
    assert created.spec.progress_deadline_seconds == 600
    listed = apps.list_namespaced_deployment(namespace)
    assert [d.metadata.name for d in listed.items] == ["web"]
    assert listed.metadata.resource_version
    replaced = update_with_retry(
        lambda: apps.read_namespaced_deployment("web", namespace),
        lambda found: setattr(found.spec, "replicas", 2),
        lambda found: apps.replace_namespaced_deployment("web", namespace, found),
    )
    assert replaced.spec.replicas == 2
    apps.delete_namespaced_deployment("web", namespace)
    assert apps.list_namespaced_deployment(namespace).items == []


def test_not_found_is_a_404_status(core: client.CoreV1Api, namespace: str) -> None:
    with pytest.raises(ApiException) as error:
        core.read_namespaced_config_map("absent", namespace)
    assert error.value.status == 404
    assert '"reason":"NotFound"' in error.value.body.replace(" ", "")


def test_creating_twice_is_a_409_already_exists(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "once"}})
    with pytest.raises(ApiException) as error:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "once"}})
    assert error.value.status == 409
    assert "AlreadyExists" in error.value.body


def test_invalid_objects_are_a_422(apps: client.AppsV1Api, namespace: str) -> None:
    manifest = deployment("web")
    manifest["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(ApiException) as error:
        apps.create_namespaced_deployment(namespace, manifest)
    assert error.value.status == 422
    assert "Invalid" in error.value.body


def test_bad_names_are_a_422(core: client.CoreV1Api, namespace: str) -> None:
    with pytest.raises(ApiException) as error:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "Not_A_Name"}})
    assert error.value.status == 422


def test_stale_resource_version_on_put_is_a_409(core: client.CoreV1Api, namespace: str) -> None:
    stale = core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}})
    fresh = core.read_namespaced_config_map("cm", namespace)
    fresh.data = {"a": "1"}
    core.replace_namespaced_config_map("cm", namespace, fresh)
    stale.data = {"a": "2"}
    with pytest.raises(ApiException) as error:
        core.replace_namespaced_config_map("cm", namespace, stale)
    assert error.value.status == 409
    assert "the object has been modified" in error.value.body


def test_put_of_a_missing_object_is_a_404(core: client.CoreV1Api, namespace: str) -> None:
    with pytest.raises(ApiException) as error:
        core.replace_namespaced_config_map("cm", namespace, {"metadata": {"name": "cm"}})
    assert error.value.status == 404


def test_secret_string_data_becomes_base64_data(core: client.CoreV1Api, namespace: str) -> None:
    secret = core.create_namespaced_secret(
        namespace, {"metadata": {"name": "pull"}, "stringData": {"token": "s3cret"}}
    )
    assert secret.string_data is None
    assert base64.b64decode(secret.data["token"]) == b"s3cret"
    assert secret.type == "Opaque"


def test_services_get_a_cluster_ip_and_port_defaults(
    core: client.CoreV1Api, namespace: str
) -> None:
    service = core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        },
    )
    assert service.spec.type == "ClusterIP"
    assert service.spec.cluster_ip.startswith("10.96.")
    assert service.spec.cluster_ips == [service.spec.cluster_ip]
    port = service.spec.ports[0]
    assert (port.protocol, port.target_port) == ("TCP", 80)
    # An update that leaves the cluster IP out keeps it.
    updated = core.replace_namespaced_service(
        "web",
        namespace,
        {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 81, "targetPort": 8080}]}},
    )
    assert updated.spec.cluster_ip == service.spec.cluster_ip


def test_status_is_only_written_through_the_status_subresource(
    core: client.CoreV1Api, namespace: str
) -> None:
    ports = {"ports": [{"port": 80}]}
    created = core.create_namespaced_service(namespace, {"metadata": {"name": "lb"}, "spec": ports})
    ingress = {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}
    created.status = ingress
    core.replace_namespaced_service("lb", namespace, created)
    assert core.read_namespaced_service("lb", namespace).status.load_balancer.ingress is None
    core.patch_namespaced_service_status("lb", namespace, {"status": ingress})
    after = core.read_namespaced_service("lb", namespace)
    assert after.status.load_balancer.ingress[0].ip == "203.0.113.7"


def test_a_status_write_leaves_spec_and_generation_alone(
    apps: client.AppsV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("web"))
    patched = apps.patch_namespaced_deployment_status(
        "web", namespace, {"spec": {"replicas": 5}, "status": {"observedGeneration": 41}}
    )
    assert patched.status.observed_generation == 41
    assert patched.spec.replicas == 1
    assert patched.metadata.generation == 1


def test_lists_are_paginated_with_limit_and_continue(
    core: client.CoreV1Api, namespace: str
) -> None:
    for index in range(5):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": f"cm-{index}"}})
    first = core.list_namespaced_config_map(namespace, limit=2)
    assert len(first.items) == 2
    assert first.metadata.remaining_item_count == 3
    rest = core.list_namespaced_config_map(
        namespace, limit=10, _continue=first.metadata.var_continue
    )
    assert [c.metadata.name for c in first.items + rest.items] == [f"cm-{i}" for i in range(5)]


def test_requests_without_the_token_are_unauthorized(sim: Simulator) -> None:
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"{sim.url}/api/v1/namespaces")
    assert error.value.code == 401


def test_deleting_a_pod_returns_it_and_deleting_a_secret_returns_a_status(
    core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_pod(
        namespace,
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
    )
    core.create_namespaced_secret(namespace, {"metadata": {"name": "s"}})
    assert core.delete_namespaced_pod("p", namespace).metadata.name == "p"
    assert core.delete_namespaced_secret("s", namespace)["status"] == "Success"


def test_dynamic_client_discovers_and_applies(api_client: client.ApiClient, sim: Simulator) -> None:
    from kubernetes import dynamic

    resources = dynamic.DynamicClient(api_client).resources
    config_maps = resources.get(api_version="v1", kind="ConfigMap")
    applied = config_maps.server_side_apply(
        body={
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cm"},
            "data": {"a": "b"},
        },
        namespace="default",
        field_manager="aether",
    )
    assert applied.to_dict()["data"] == {"a": "b"}
    deployments = resources.get(api_version="apps/v1", kind="Deployment")
    assert deployments.get(namespace="default").items == []


def test_a_new_replica_set_reports_zero_replicas_before_its_controller_syncs() -> None:
    """The official client refuses a ReplicaSet status without ``replicas``."""
    store = Store()
    try:
        template = {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "node"}]},
        }
        spec = {"selector": {"matchLabels": {"app": "web"}}, "template": template}
        store.create(REPLICA_SETS, "default", {"metadata": {"name": "web-1"}, "spec": spec})
        created = store.get(REPLICA_SETS, "default", "web-1")
    finally:
        store.close()
    assert created["status"] == {"replicas": 0}
    assert client.V1ReplicaSetStatus.from_dict(created["status"]).replicas == 0
