"""The patch functions on their own, for the cases the client tests do not reach."""

from __future__ import annotations

from infra.kubesim.merge import apply_configuration, json_merge_patch, strategic_merge


def test_volume_mounts_merge_by_mount_path() -> None:
    live = {"volumeMounts": [{"name": "app", "mountPath": "/app"}]}
    patch = {
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"mountPath": "/app", "readOnly": True},
        ]
    }
    assert strategic_merge(live, patch) == {
        "volumeMounts": [
            {"name": "app", "mountPath": "/app", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ]
    }


def test_container_and_service_ports_use_their_own_keys() -> None:
    container = {"ports": [{"containerPort": 80, "name": "http"}]}
    merged = strategic_merge(container, {"ports": [{"containerPort": 80, "protocol": "TCP"}]})
    assert merged == {"ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}]}
    service = {"ports": [{"port": 80, "targetPort": 8080}]}
    merged = strategic_merge(service, {"ports": [{"port": 443, "targetPort": 8443}]})
    assert [p["port"] for p in merged["ports"]] == [80, 443]


def test_lists_without_a_merge_key_are_replaced() -> None:
    assert strategic_merge({"args": ["a", "b"]}, {"args": ["c"]}) == {"args": ["c"]}


def test_map_directives() -> None:
    live = {"spec": {"a": 1, "b": 2}, "keep": True}
    assert strategic_merge(live, {"spec": {"$patch": "replace", "c": 3}}) == {
        "spec": {"c": 3},
        "keep": True,
    }
    assert strategic_merge(live, {"spec": {"$patch": "delete"}}) == {"keep": True}
    assert strategic_merge(live, {"spec": {"$retainKeys": ["a"], "a": 5}}) == {
        "spec": {"a": 5},
        "keep": True,
    }


def test_primitive_list_directives() -> None:
    live = {"metadata": {"finalizers": ["a", "b"]}}
    assert strategic_merge(live, {"metadata": {"finalizers": ["c"]}}) == {
        "metadata": {"finalizers": ["a", "b", "c"]}
    }
    removed = strategic_merge(live, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert removed == {"metadata": {"finalizers": ["b"]}}


def test_inputs_are_left_alone() -> None:
    live = {"env": [{"name": "A", "value": "1"}]}
    strategic_merge(live, {"env": [{"name": "A", "value": "2"}]})
    json_merge_patch(live, {"env": None})
    assert live == {"env": [{"name": "A", "value": "1"}]}


def test_apply_removes_list_entries_and_fields_dropped_from_the_configuration() -> None:
    before = {"spec": {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "x": 1}}
    live = {**before, "status": {"ready": True}}
    after = {"spec": {"env": [{"name": "A", "value": "1"}]}}
    assert apply_configuration(live, before, after) == {
        "spec": {"env": [{"name": "A", "value": "1"}]},
        "status": {"ready": True},
    }
