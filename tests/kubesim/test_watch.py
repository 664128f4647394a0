"""Watches through ``kubernetes.watch.Watch().stream``: events, resuming, expiry, bookmarks."""

from __future__ import annotations

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from infra.kubesim import Simulator


def test_watch_sees_added_modified_and_deleted(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}})
    seen: list[tuple[str, str]] = []
    stream = watch.Watch()
    for event in stream.stream(core.list_namespaced_config_map, namespace, timeout_seconds=10):
        seen.append((event["type"], event["object"].metadata.name))
        if event["type"] == "ADDED":
            core.patch_namespaced_config_map("cm", namespace, {"data": {"k": "v"}})
        elif event["type"] == "MODIFIED":
            assert event["object"].data == {"k": "v"}
            core.delete_namespaced_config_map("cm", namespace)
        else:
            stream.stop()
    assert seen == [("ADDED", "cm"), ("MODIFIED", "cm"), ("DELETED", "cm")]


def test_watch_resumes_from_a_resource_version(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "before"}})
    listed = core.list_namespaced_config_map(namespace)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "after"}})
    core.delete_namespaced_config_map("before", namespace)
    stream = watch.Watch()
    seen = []
    for event in stream.stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=5,
    ):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 2:
            stream.stop()
    assert seen == [("ADDED", "after"), ("DELETED", "before")]


def test_watch_from_a_compacted_resource_version_is_410(
    core: client.CoreV1Api, namespace: str, sim: Simulator
) -> None:
    old = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}})
    sim.expire_watch_history()
    with pytest.raises(ApiException) as error:
        for _ in watch.Watch().stream(
            core.list_namespaced_config_map, namespace, resource_version=old, timeout_seconds=5
        ):
            pass
    assert error.value.status == 410


def test_label_filtered_watch_sees_objects_enter_and_leave(
    core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}})
    version = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.patch_namespaced_config_map("cm", namespace, {"metadata": {"labels": {"pick": "me"}}})
    core.patch_namespaced_config_map("cm", namespace, {"data": {"k": "v"}})
    core.patch_namespaced_config_map("cm", namespace, {"metadata": {"labels": {"pick": None}}})
    stream = watch.Watch()
    seen = []
    for event in stream.stream(
        core.list_namespaced_config_map,
        namespace,
        label_selector="pick=me",
        resource_version=version,
        timeout_seconds=5,
    ):
        seen.append(event["type"])
        if len(seen) == 3:
            stream.stop()
    assert seen == ["ADDED", "MODIFIED", "DELETED"]


def test_watch_sends_bookmarks_when_asked(core: client.CoreV1Api, namespace: str) -> None:
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_config_map,
        namespace,
        allow_watch_bookmarks=True,
        timeout_seconds=5,
    ):
        assert event["type"] == "BOOKMARK"
        assert event["raw_object"]["metadata"]["resourceVersion"]
        stream.stop()


def test_watch_ends_at_its_timeout(core: client.CoreV1Api, namespace: str) -> None:
    events = list(
        watch.Watch().stream(core.list_namespaced_config_map, namespace, timeout_seconds=1)
    )
    assert events == []


def test_deployment_watch_deserializes_to_models(apps: client.AppsV1Api, namespace: str) -> None:
    from tests.kubesim.workloads import deployment

    apps.create_namespaced_deployment(namespace, deployment("web"))
    stream = watch.Watch()
    for event in stream.stream(apps.list_namespaced_deployment, namespace, timeout_seconds=10):
        assert isinstance(event["object"], client.V1Deployment)
        if (event["object"].status.available_replicas or 0) >= 1:
            stream.stop()


def test_watch_ends_when_the_api_goes_down(
    core: client.CoreV1Api, namespace: str, sim: Simulator
) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}})
    with pytest.raises(ApiException) as error:
        for _ in watch.Watch().stream(core.list_namespaced_config_map, namespace):
            sim.set_api_down(True)
    assert error.value.status == 503
