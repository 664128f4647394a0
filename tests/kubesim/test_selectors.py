"""Label selectors with every operator, and field selectors, on lists."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

LABELS = {
    "web": {"tier": "front", "env": "prod"},
    "api": {"tier": "back", "env": "prod"},
    "job": {"tier": "back", "env": "dev", "batch": "yes"},
    "bare": {},
}


@pytest.fixture
def labelled(core: client.CoreV1Api, namespace: str) -> str:
    for name, labels in LABELS.items():
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "labels": labels}})
    return namespace


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=back", {"api", "job"}),
        ("tier==front", {"web"}),
        ("tier!=back", {"web", "bare"}),
        ("env in (prod,dev)", {"web", "api", "job"}),
        ("env notin (prod)", {"job", "bare"}),
        ("batch", {"job"}),
        ("!batch", {"web", "api", "bare"}),
        ("tier=back,env=prod", {"api"}),
        ("tier in (front, back),!batch", {"web", "api"}),
        ("", {"web", "api", "job", "bare"}),
    ],
)
def test_label_selectors_filter_lists(
    core: client.CoreV1Api, labelled: str, selector: str, expected: set[str]
) -> None:
    found = core.list_namespaced_config_map(labelled, label_selector=selector)
    assert {item.metadata.name for item in found.items} == expected


def test_a_malformed_label_selector_is_a_400(core: client.CoreV1Api, labelled: str) -> None:
    with pytest.raises(ApiException) as error:
        core.list_namespaced_config_map(labelled, label_selector="tier in front")
    assert error.value.status == 400


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("metadata.name=api", {"api"}),
        ("metadata.name!=api", {"web", "job", "bare"}),
        ("metadata.name!=api,metadata.name!=job", {"web", "bare"}),
    ],
)
def test_field_selectors_on_name(
    core: client.CoreV1Api, labelled: str, selector: str, expected: set[str]
) -> None:
    found = core.list_namespaced_config_map(labelled, field_selector=selector)
    assert {item.metadata.name for item in found.items} == expected


def test_field_selector_on_pod_phase(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(
        namespace,
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
    )
    running = core.list_namespaced_pod(namespace, field_selector="status.phase=Running")
    not_failed = core.list_namespaced_pod(namespace, field_selector="status.phase!=Failed")
    assert [p.metadata.name for p in not_failed.items] == ["p"]
    assert all(p.status.phase == "Running" for p in running.items)


def test_lists_across_namespaces_honour_selectors(core: client.CoreV1Api, labelled: str) -> None:
    found = core.list_config_map_for_all_namespaces(label_selector="tier=front")
    assert [(c.metadata.namespace, c.metadata.name) for c in found.items] == [(labelled, "web")]
