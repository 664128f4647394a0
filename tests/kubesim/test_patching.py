"""Strategic merge, JSON merge and JSON patches, server-side apply, and generation."""

from __future__ import annotations

import copy

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.kubesim.workloads import condition, deployment
from tests.polling import wait_for

APPLY = "application/apply-patch+yaml"


def _containers(apps: client.AppsV1Api, namespace: str) -> dict[str, object]:
    found = apps.read_namespaced_deployment("web", namespace)
    return {c.name: c for c in found.spec.template.spec.containers}


def test_strategic_merge_patches_containers_and_env_by_name(
    apps: client.AppsV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("web", env={"A": "1", "B": "2"}))
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
                        },
                        {"name": "sidecar", "image": "proxy:1"},
                    ]
                }
            }
        }
    }
    apps.patch_namespaced_deployment("web", namespace, patch)
    containers = _containers(apps, namespace)
    assert set(containers) == {"app", "sidecar"}
    app = containers["app"]
    assert [(e.name, e.value) for e in app.env] == [("A", "1"), ("B", "20"), ("C", "3")]
    assert app.image == "aether-nodejs:20-slim"  # untouched fields survive


def test_patch_directive_delete_removes_a_list_element(
    apps: client.AppsV1Api, namespace: str
) -> None:
    manifest = deployment("web")
    manifest["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "p:1"})
    apps.create_namespaced_deployment(namespace, manifest)
    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}
    }
    apps.patch_namespaced_deployment("web", namespace, patch)
    assert set(_containers(apps, namespace)) == {"app"}


def test_patch_directive_replace_replaces_a_list(apps: client.AppsV1Api, namespace: str) -> None:
    apps.create_namespaced_deployment(namespace, deployment("web", env={"A": "1", "B": "2"}))
    env = [{"name": "Z", "value": "26"}, {"$patch": "replace"}]
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "env": env}]}}}}
    apps.patch_namespaced_deployment("web", namespace, patch)
    assert [e.name for e in _containers(apps, namespace)["app"].env] == ["Z"]


def test_null_in_a_patch_deletes_the_field(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "cm", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}}
    )
    patched = core.patch_namespaced_config_map(
        "cm", namespace, {"metadata": {"labels": {"a": None}}, "data": None}
    )
    assert patched.metadata.labels == {"b": "2"}
    assert patched.data is None


def test_json_patch_operations(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    patched = core.patch_namespaced_config_map(
        "cm",
        namespace,
        [
            {"op": "add", "path": "/data/b", "value": "2"},
            {"op": "replace", "path": "/data/a", "value": "10"},
            {"op": "test", "path": "/data/b", "value": "2"},
        ],
    )
    assert patched.data == {"a": "10", "b": "2"}
    with pytest.raises(ApiException) as failed_test:
        core.patch_namespaced_config_map(
            "cm", namespace, [{"op": "test", "path": "/data/a", "value": "nope"}]
        )
    assert failed_test.value.status == 422


def test_json_merge_patch_replaces_lists(apps: client.AppsV1Api, namespace: str) -> None:
    apps.create_namespaced_deployment(namespace, deployment("web", env={"A": "1", "B": "2"}))
    containers = [{"name": "app", "image": "aether-nodejs:22-slim"}]
    patched = apps.patch_namespaced_deployment(
        "web",
        namespace,
        {"spec": {"template": {"spec": {"containers": containers}}}},
        _content_type="application/merge-patch+json",
    )
    (app,) = patched.spec.template.spec.containers
    assert app.image == "aether-nodejs:22-slim"
    assert app.env is None


def test_apply_creates_then_reapplying_changes_nothing(
    core: client.CoreV1Api, namespace: str
) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm"},
        "data": {"a": "1"},
    }
    first = core.api_client.call_api(
        *core.api_client.param_serialize(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/configmaps/cm",
            query_params=[("fieldManager", "aether")],
            header_params={"Content-Type": APPLY, "Accept": "application/json"},
            body=config,
            auth_settings=["BearerToken"],
        )
    )
    assert first.status == 201
    created = core.read_namespaced_config_map("cm", namespace)
    again = core.patch_namespaced_config_map(
        "cm", namespace, copy.deepcopy(config), field_manager="aether", _content_type=APPLY
    )
    # A real API server does not write (nor bump resourceVersion) when nothing changed.
    assert again.metadata.resource_version == created.metadata.resource_version


def test_apply_without_field_manager_is_a_422(core: client.CoreV1Api, namespace: str) -> None:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}
    with pytest.raises(ApiException) as error:
        core.patch_namespaced_config_map("cm", namespace, config, _content_type=APPLY)
    assert error.value.status == 422


def test_reapplying_a_deployment_keeps_resource_version_and_generation(
    apps: client.AppsV1Api, namespace: str
) -> None:
    manifest = deployment("web")
    applied = apps.patch_namespaced_deployment(
        "web", namespace, manifest, field_manager="aether", _content_type=APPLY
    )
    assert applied.metadata.generation == 1

    def settled() -> client.V1Deployment | None:
        found = apps.read_namespaced_deployment("web", namespace)
        progressing = condition(found, "Progressing")
        done = progressing is not None and progressing.reason == "NewReplicaSetAvailable"
        return found if done else None

    before = wait_for(settled, what="the rollout to finish")
    again = apps.patch_namespaced_deployment(
        "web", namespace, manifest, field_manager="aether", _content_type=APPLY
    )
    assert again.metadata.generation == 1
    assert again.metadata.resource_version == before.metadata.resource_version


def test_apply_removes_fields_the_manager_no_longer_sets(
    apps: client.AppsV1Api, namespace: str
) -> None:
    apps.patch_namespaced_deployment(
        "web",
        namespace,
        deployment("web", env={"A": "1", "B": "2"}),
        field_manager="aether",
        _content_type=APPLY,
    )
    applied = apps.patch_namespaced_deployment(
        "web",
        namespace,
        deployment("web", env={"A": "1"}),
        field_manager="aether",
        _content_type=APPLY,
    )
    assert [e.name for e in applied.spec.template.spec.containers[0].env] == ["A"]
    assert applied.metadata.generation == 2


def test_generation_changes_only_with_the_spec(apps: client.AppsV1Api, namespace: str) -> None:
    created = apps.create_namespaced_deployment(namespace, deployment("web"))
    labelled = apps.patch_namespaced_deployment(
        "web", namespace, {"metadata": {"labels": {"x": "y"}}}
    )
    assert labelled.metadata.generation == created.metadata.generation == 1
    assert int(labelled.metadata.resource_version) > int(created.metadata.resource_version)
    scaled = apps.patch_namespaced_deployment("web", namespace, {"spec": {"replicas": 3}})
    assert scaled.metadata.generation == 2
