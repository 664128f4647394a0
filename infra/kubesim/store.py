"""Objects, the global resourceVersion, and the change history that watches read from."""

from __future__ import annotations

import copy
import secrets
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from infra.kubesim.admission import Admission, validate_name
from infra.kubesim.api_errors import bad_request, expired
from infra.kubesim.clock import format_time, utc_now
from infra.kubesim.merge import apply_configuration
from infra.kubesim.resources import ALL_KINDS, NAMESPACES, KubeObject, ResourceKind

INITIAL_NAMESPACES = ("default", "kube-system")
_GENERATED_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

ObjectKey = tuple[str, str, str]  # (plural, namespace or "", name)


@dataclass(frozen=True)
class WatchEvent:
    resource_version: int
    kind: ResourceKind
    namespace: str
    type: str  # ADDED, MODIFIED or DELETED
    object: KubeObject
    # The object before a MODIFIED, so a filtered watch can turn it into ADDED or DELETED.
    previous: KubeObject | None


def _without_resource_version(obj: KubeObject) -> KubeObject:
    stripped = copy.deepcopy(obj)
    stripped.get("metadata", {}).pop("resourceVersion", None)
    return stripped


def generate_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_GENERATED_SUFFIX_ALPHABET) for _ in range(length))


class Store:
    """All objects of the simulated cluster behind one lock.

    Stored dicts are never mutated after they are written (each write stores a new dict), so
    history entries can share them; callers get deep copies.
    """

    def __init__(self, history_limit: int = 4096) -> None:
        self._lock = threading.RLock()
        self.changed = threading.Condition(self._lock)
        self._objects: dict[ObjectKey, KubeObject] = {}
        # The same objects by kind: a list reads only its own kind, not every event and pod.
        self._by_kind: dict[str, dict[ObjectKey, KubeObject]] = {}
        self._revision = 0
        self._history: deque[WatchEvent] = deque(maxlen=history_limit)
        self._compacted_through = 0
        self._listeners: list[Callable[[WatchEvent], None]] = []
        self._admission = Admission()
        # Last configuration applied per object and field manager, for server-side apply.
        self._applied: dict[tuple[str, str, str, str], KubeObject] = {}
        self.closed = False
        for name in INITIAL_NAMESPACES:
            self.create(NAMESPACES, "", {"metadata": {"name": name}})

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    @property
    def revision(self) -> int:
        with self._lock:
            return self._revision

    def subscribe(self, listener: Callable[[WatchEvent], None]) -> None:
        """Call ``listener`` after every change, under the store lock: it must only enqueue."""
        with self._lock:
            self._listeners.append(listener)

    # -- reads -------------------------------------------------------------------------------

    def get(self, kind: ResourceKind, namespace: str, name: str) -> KubeObject:
        with self._lock:
            return copy.deepcopy(self._stored(kind, namespace, name))

    def find(self, kind: ResourceKind, namespace: str, name: str) -> KubeObject | None:
        with self._lock:
            stored = self._objects.get(self._key(kind, namespace, name))
            return copy.deepcopy(stored) if stored is not None else None

    def list_objects(
        self,
        kind: ResourceKind,
        namespace: str | None,
        predicate: Callable[[KubeObject], bool] = lambda _: True,
    ) -> tuple[list[KubeObject], int]:
        """Matching objects sorted by namespace and name, and the revision they were read at."""
        with self._lock:
            items = [
                copy.deepcopy(obj)
                for (_, obj_namespace, _), obj in sorted(self._by_kind.get(kind.plural, {}).items())
                if (namespace is None or obj_namespace == namespace) and predicate(obj)
            ]
            return items, self._revision

    # -- writes ------------------------------------------------------------------------------

    def create(
        self, kind: ResourceKind, namespace: str, body: KubeObject, *, dry_run: bool = False
    ) -> KubeObject:
        with self._lock:
            obj = copy.deepcopy(body)
            metadata = obj.setdefault("metadata", {})
            namespace = self._check_namespace(kind, namespace, metadata)
            if not metadata.get("name") and metadata.get("generateName"):
                metadata["name"] = metadata["generateName"] + generate_suffix()
            name = metadata.get("name", "")
            validate_name(kind, name)
            if self._key(kind, namespace, name) in self._objects:
                raise kind.already_exists(name)
            obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
            if kind.status_subresource:
                obj["status"] = dict(kind.initial_status)
            for field in ("resourceVersion", "deletionTimestamp", "managedFields"):
                metadata.pop(field, None)
            metadata["uid"] = str(uuid.uuid4())
            metadata["creationTimestamp"] = format_time(utc_now())
            if kind.tracks_generation:
                metadata["generation"] = 1
            else:
                metadata.pop("generation", None)
            self._admission.admit(kind, obj, None)
            if dry_run:
                return obj
            return self._commit(kind, namespace, obj, "ADDED", None)

    def replace(
        self,
        kind: ResourceKind,
        namespace: str,
        name: str,
        body: KubeObject,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> KubeObject:
        """PUT: a stale ``metadata.resourceVersion`` in ``body`` is a 409 Conflict."""
        with self._lock:
            old = self._stored(kind, namespace, name)
            return self._update(kind, namespace, old, body, subresource, dry_run)

    def modify(
        self,
        kind: ResourceKind,
        namespace: str,
        name: str,
        change: Callable[[KubeObject], KubeObject],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> KubeObject:
        """Read, ``change`` and write atomically (PATCH, and controllers' status updates)."""
        with self._lock:
            old = self._stored(kind, namespace, name)
            return self._update(
                kind, namespace, old, change(copy.deepcopy(old)), subresource, dry_run
            )

    def apply(
        self,
        kind: ResourceKind,
        namespace: str,
        name: str,
        configuration: KubeObject,
        *,
        field_manager: str,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> tuple[KubeObject, bool]:
        """Server-side apply; returns the object and whether it was created."""
        with self._lock:
            config_name = (configuration.get("metadata") or {}).get("name")
            if config_name != name:
                raise bad_request(
                    f"the name of the object ({config_name}) does not match the name on the "
                    f"URL ({name})"
                )
            applied_key = (kind.plural, namespace, name, field_manager)
            live = self._objects.get(self._key(kind, namespace, name))
            if live is None:
                created = self.create(kind, namespace, configuration, dry_run=dry_run)
                if not dry_run:
                    self._applied[applied_key] = copy.deepcopy(configuration)
                return created, True
            merged = apply_configuration(live, self._applied.get(applied_key), configuration)
            result = self._update(kind, namespace, live, merged, subresource, dry_run)
            if not dry_run:
                self._applied[applied_key] = copy.deepcopy(configuration)
            return result, False

    def delete(
        self,
        kind: ResourceKind,
        namespace: str,
        name: str,
        *,
        propagation: str = "Background",
        precondition_uid: str | None = None,
        precondition_resource_version: str | None = None,
        dry_run: bool = False,
    ) -> KubeObject:
        with self._lock:
            obj = self._stored(kind, namespace, name)
            metadata = obj["metadata"]
            if precondition_uid and precondition_uid != metadata["uid"]:
                raise kind.conflict(name)
            if (
                precondition_resource_version
                and precondition_resource_version != metadata["resourceVersion"]
            ):
                raise kind.conflict(name)
            if dry_run:
                return copy.deepcopy(obj)
            if kind is NAMESPACES:
                self._delete_namespace_contents(name)
            key = self._key(kind, namespace, name)
            self._objects.pop(key)
            self._by_kind[kind.plural].pop(key)
            self._applied = {
                k: v for k, v in self._applied.items() if k[:3] != (kind.plural, namespace, name)
            }
            self._record(kind, namespace, "DELETED", obj, None)
            self._collect_dependents(metadata["uid"], orphan=propagation == "Orphan")
            return copy.deepcopy(obj)

    def delete_all(self) -> None:
        """Delete everything and recreate the initial namespaces (a reset between tests)."""
        with self._lock:
            for key in sorted(self._objects, key=lambda k: k[0] != NAMESPACES.plural):
                plural, namespace, name = key
                if key in self._objects:
                    kind = next(k for k in ALL_KINDS if k.plural == plural)
                    self.delete(kind, namespace, name)
            for name in INITIAL_NAMESPACES:
                self.create(NAMESPACES, "", {"metadata": {"name": name}})

    # -- watch history -----------------------------------------------------------------------

    def events_after(self, resource_version: int) -> list[WatchEvent]:
        """Changes newer than ``resource_version``; 410 Expired if history no longer has them."""
        with self._lock:
            if resource_version < self._compacted_through:
                raise expired(
                    f"too old resource version: {resource_version} ({self._compacted_through})"
                )
            return [e for e in self._history if e.resource_version > resource_version]

    def compact(self) -> None:
        """Forget the history so far, as etcd compaction does: older watches get 410."""
        with self._lock:
            self._history.clear()
            self._compacted_through = self._revision

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self.changed.notify_all()

    def wake_watchers(self) -> None:
        with self._lock:
            self.changed.notify_all()

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _key(kind: ResourceKind, namespace: str, name: str) -> ObjectKey:
        return (kind.plural, namespace if kind.namespaced else "", name)

    def _stored(self, kind: ResourceKind, namespace: str, name: str) -> KubeObject:
        obj = self._objects.get(self._key(kind, namespace, name))
        if obj is None:
            raise kind.not_found(name)
        return obj

    def _check_namespace(self, kind: ResourceKind, namespace: str, metadata: dict[str, Any]) -> str:
        if not kind.namespaced:
            metadata.pop("namespace", None)
            return ""
        body_namespace = metadata.get("namespace")
        if body_namespace and body_namespace != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        if self._key(NAMESPACES, "", namespace) not in self._objects:
            raise NAMESPACES.not_found(namespace)
        metadata["namespace"] = namespace
        return namespace

    def _update(
        self,
        kind: ResourceKind,
        namespace: str,
        old: KubeObject,
        body: KubeObject,
        subresource: str | None,
        dry_run: bool,
    ) -> KubeObject:
        name = old["metadata"]["name"]
        new = copy.deepcopy(body)
        metadata = new.setdefault("metadata", {})
        if metadata.get("name", name) != name:
            raise bad_request(
                f"the name of the object ({metadata['name']}) does not match the name on the "
                f"URL ({name})"
            )
        sent_version = metadata.get("resourceVersion")
        if sent_version and sent_version != old["metadata"]["resourceVersion"]:
            raise kind.conflict(name)
        if subresource == "status":
            # A status write changes nothing but status.
            new = {**copy.deepcopy(old), "status": new.get("status") or {}}
        elif subresource is not None:
            raise kind.not_found(f"{name}/{subresource}")
        else:
            if kind.status_subresource:
                new["status"] = copy.deepcopy(old.get("status") or {})
            new["apiVersion"], new["kind"] = kind.api_version, kind.kind
            for field in ("uid", "creationTimestamp", "namespace", "generation"):
                if field in old["metadata"]:
                    metadata[field] = old["metadata"][field]
                else:
                    metadata.pop(field, None)
            metadata["name"] = name
            self._admission.admit(kind, new, old)
            if kind.tracks_generation and new.get("spec") != old.get("spec"):
                metadata["generation"] = old["metadata"].get("generation", 1) + 1
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old:
            # A write that changes nothing keeps the resourceVersion and notifies nobody.
            return copy.deepcopy(old)
        if dry_run:
            return new
        return self._commit(kind, namespace, new, "MODIFIED", old)

    def _commit(
        self,
        kind: ResourceKind,
        namespace: str,
        obj: KubeObject,
        event_type: str,
        previous: KubeObject | None,
    ) -> KubeObject:
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        key = self._key(kind, namespace, obj["metadata"]["name"])
        self._objects[key] = obj
        self._by_kind.setdefault(kind.plural, {})[key] = obj
        self._record(kind, namespace, event_type, obj, previous, bump=False)
        return copy.deepcopy(obj)

    def _record(
        self,
        kind: ResourceKind,
        namespace: str,
        event_type: str,
        obj: KubeObject,
        previous: KubeObject | None,
        *,
        bump: bool = True,
    ) -> None:
        if bump:
            # A deletion is a change too: it gets its own revision, carried by the last state.
            self._revision += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self._revision)
        event = WatchEvent(self._revision, kind, namespace, event_type, obj, previous)
        if self._history.maxlen is not None and len(self._history) == self._history.maxlen:
            self._compacted_through = self._history[0].resource_version
        self._history.append(event)
        for listener in self._listeners:
            listener(event)
        self.changed.notify_all()

    def _delete_namespace_contents(self, namespace: str) -> None:
        for plural, obj_namespace, name in sorted(self._objects):
            if obj_namespace == namespace and (plural, obj_namespace, name) in self._objects:
                kind = next(k for k in ALL_KINDS if k.plural == plural)
                self.delete(kind, namespace, name)

    def _collect_dependents(self, owner_uid: str, *, orphan: bool) -> None:
        """Garbage collection: delete (or orphan) what names the deleted object as an owner."""
        for key, obj in list(self._objects.items()):
            references = obj["metadata"].get("ownerReferences") or []
            if (
                not any(ref.get("uid") == owner_uid for ref in references)
                or key not in self._objects
            ):
                continue
            plural, namespace, name = key
            kind = next(k for k in ALL_KINDS if k.plural == plural)
            if orphan:
                remaining = [ref for ref in references if ref.get("uid") != owner_uid]
                self.modify(kind, namespace, name, _with_owner_references(remaining))
            else:
                self.delete(kind, namespace, name)


def _with_owner_references(references: Iterable[Any]) -> Callable[[KubeObject], KubeObject]:
    def change(obj: KubeObject) -> KubeObject:
        obj["metadata"]["ownerReferences"] = list(references)
        if not obj["metadata"]["ownerReferences"]:
            del obj["metadata"]["ownerReferences"]
        return obj

    return change
