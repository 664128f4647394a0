"""Patch formats of the API server: strategic merge, JSON merge, JSON patch, and apply.

Objects are plain JSON values. Every function returns a new value and leaves its inputs alone,
because stored objects are shared with the watch history.
"""

from __future__ import annotations

import copy
from typing import Any

from infra.kubesim.api_errors import ApiError, bad_request

# The patchMergeKey of the list fields that carry one in the Kubernetes OpenAPI schema; a list
# field without an entry here is atomic and replaced as a whole.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
# Lists of scalars with patchStrategy "merge": a patch adds to them instead of replacing.
PRIMITIVE_MERGE_LISTS = frozenset({"finalizers"})

_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList/"
_SET_ELEMENT_ORDER = "$setElementOrder/"


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        # Container ports merge by containerPort, Service ports by port.
        has_container_port = any(isinstance(i, dict) and "containerPort" in i for i in items)
        return "containerPort" if has_container_port else "port"
    return MERGE_KEYS.get(field)


def _without_directives(value: Any) -> Any:
    """A patch fragment inserted as new content: directives and nulls have nothing to act on."""
    if isinstance(value, dict):
        return {
            key: _without_directives(item)
            for key, item in value.items()
            if not key.startswith("$") and item is not None
        }
    if isinstance(value, list):
        return [
            _without_directives(item)
            for item in value
            if not (isinstance(item, dict) and "$patch" in item)
        ]
    return value


def strategic_merge(original: Any, patch: Any) -> Any:
    """Apply a strategic merge patch (``application/strategic-merge-patch+json``)."""
    if not isinstance(patch, dict):
        return _without_directives(patch)
    if not isinstance(original, dict):
        original = {}
    directive = patch.get("$patch")
    if directive == "replace":
        return _without_directives(patch)
    if directive not in (None, "merge"):
        raise bad_request(f"unknown patch directive {directive!r} for a map")
    result = copy.deepcopy(original)
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith(_SET_ELEMENT_ORDER):
            continue
        if key.startswith(_DELETE_FROM_PRIMITIVE_LIST):
            field = key[len(_DELETE_FROM_PRIMITIVE_LIST) :]
            result[field] = [item for item in result.get(field) or [] if item not in value]
            continue
        if value is None or (isinstance(value, dict) and value.get("$patch") == "delete"):
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = strategic_merge(result.get(key), value)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            result[key] = value
    if "$retainKeys" in patch:
        retained = set(patch["$retainKeys"])
        result = {key: value for key, value in result.items() if key in retained}
    return result


def _merge_list(field: str, original: Any, patch: list[Any]) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [
            _without_directives(item)
            for item in patch
            if not (isinstance(item, dict) and item.get("$patch") == "replace")
        ]
    current: list[Any] = copy.deepcopy(original) if isinstance(original, list) else []
    if field in PRIMITIVE_MERGE_LISTS:
        return current + [item for item in patch if item not in current]
    key = _merge_key(field, patch + current)
    if key is None or not all(isinstance(item, dict) for item in patch):
        return [_without_directives(item) for item in patch]
    for item in patch:
        position = next(
            (i for i, existing in enumerate(current) if existing.get(key) == item.get(key)), None
        )
        if item.get("$patch") == "delete":
            current = [existing for existing in current if existing.get(key) != item.get(key)]
        elif position is None:
            current.append(_without_directives(item))
        else:
            current[position] = strategic_merge(current[position], item)
    return current


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 (``application/merge-patch+json``): maps merge, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


def _pointer_segments(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise bad_request(f"invalid JSON pointer {pointer!r}")
    return [segment.replace("~1", "/").replace("~0", "~") for segment in pointer[1:].split("/")]


def _invalid_patch(message: str) -> ApiError:
    return ApiError(422, "Invalid", message)


def _parent_and_segment(document: Any, pointer: str) -> tuple[Any, str]:
    segments = _pointer_segments(pointer)
    if not segments:
        raise _invalid_patch("the whole document cannot be the target of this operation")
    parent = document
    for segment in segments[:-1]:
        parent = _child(parent, segment, pointer)
    return parent, segments[-1]


def _child(container: Any, segment: str, pointer: str) -> Any:
    if isinstance(container, dict) and segment in container:
        return container[segment]
    if isinstance(container, list) and segment.isdigit() and int(segment) < len(container):
        return container[int(segment)]
    raise _invalid_patch(f"path {pointer!r} does not exist")


def _resolve(document: Any, pointer: str) -> Any:
    value = document
    for segment in _pointer_segments(pointer):
        value = _child(value, segment, pointer)
    return value


def _add(document: Any, pointer: str, value: Any) -> Any:
    if pointer == "":
        return copy.deepcopy(value)
    parent, segment = _parent_and_segment(document, pointer)
    if isinstance(parent, dict):
        parent[segment] = copy.deepcopy(value)
    elif isinstance(parent, list):
        index = len(parent) if segment == "-" else int(segment) if segment.isdigit() else -1
        if not 0 <= index <= len(parent):
            raise _invalid_patch(f"index out of range in {pointer!r}")
        parent.insert(index, copy.deepcopy(value))
    else:
        raise _invalid_patch(f"path {pointer!r} does not exist")
    return document


def _remove(document: Any, pointer: str) -> Any:
    parent, segment = _parent_and_segment(document, pointer)
    _child(parent, segment, pointer)
    if isinstance(parent, dict):
        del parent[segment]
    else:
        del parent[int(segment)]
    return document


def json_patch(document: Any, operations: list[Any]) -> Any:
    """RFC 6902 (``application/json-patch+json``)."""
    result = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise bad_request("a JSON patch operation needs 'op' and 'path'")
        op, path = operation["op"], operation["path"]
        if op == "add":
            result = _add(result, path, operation.get("value"))
        elif op == "remove":
            result = _remove(result, path)
        elif op == "replace":
            value = operation.get("value")
            result = _add(_remove(result, path), path, value) if path else copy.deepcopy(value)
        elif op in ("move", "copy"):
            value = copy.deepcopy(_resolve(result, operation.get("from", "")))
            if op == "move":
                result = _remove(result, operation["from"])
            result = _add(result, path, value)
        elif op == "test":
            if _resolve(result, path) != operation.get("value"):
                raise _invalid_patch(f"test operation failed at {path!r}")
        else:
            raise bad_request(f"unknown JSON patch operation {op!r}")
    return result


def _removals(previous: Any, current: Any) -> Any:
    """A strategic merge patch deleting what ``previous`` set and ``current`` no longer sets."""
    patch: dict[str, Any] = {}
    for key, old_value in previous.items():
        if key not in current:
            patch[key] = None
            continue
        new_value = current[key]
        if isinstance(old_value, dict) and isinstance(new_value, dict):
            nested = _removals(old_value, new_value)
            if nested:
                patch[key] = nested
        elif isinstance(old_value, list) and isinstance(new_value, list):
            merge_key = _merge_key(key, old_value + new_value)
            if merge_key is None or not all(isinstance(i, dict) for i in old_value + new_value):
                continue
            by_key = {item.get(merge_key): item for item in new_value}
            items: list[Any] = []
            for old_item in old_value:
                key_value = old_item.get(merge_key)
                if key_value not in by_key:
                    items.append({merge_key: key_value, "$patch": "delete"})
                elif nested := _removals(old_item, by_key[key_value]):
                    items.append({merge_key: key_value, **nested})
            if items:
                patch[key] = items
    return patch


def apply_configuration(
    live: dict[str, Any] | None, last_applied: dict[str, Any] | None, applied: dict[str, Any]
) -> dict[str, Any]:
    """Server-side apply for a single field manager.

    Fields the manager applied before and has now dropped are removed; everything else in the
    configuration is merged with the strategic merge rules. Ownership shared with other managers
    (and the conflicts it brings) is not modelled.
    """
    base: Any = live or {}
    if last_applied:
        base = strategic_merge(base, _removals(last_applied, applied))
    merged: dict[str, Any] = strategic_merge(base, applied)
    return merged
