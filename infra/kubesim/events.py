"""Core v1 Events, written the way kubelet and controllers do: repeats bump a count."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable

from infra.kubesim.api_errors import ApiError
from infra.kubesim.clock import format_time, utc_now
from infra.kubesim.resources import EVENTS, KubeObject
from infra.kubesim.store import Store

NODE_NAME = "aether-sim-node"


class EventRecorder:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        # (involved uid, type, reason, message, component) -> event name, for aggregation.
        self._names: dict[tuple[str, str, str, str, str], str] = {}

    def record(
        self, involved: KubeObject, event_type: str, reason: str, message: str, component: str
    ) -> None:
        metadata = involved["metadata"]
        namespace = metadata.get("namespace") or "default"
        key = (metadata["uid"], event_type, reason, message, component)
        now = format_time(utc_now())
        with self._lock:
            existing = self._names.get(key)
            try:
                if existing is not None and self._store.find(EVENTS, namespace, existing):
                    self._store.modify(EVENTS, namespace, existing, _repeated(now))
                    return
                event = self._store.create(
                    EVENTS,
                    namespace,
                    {
                        "metadata": {"name": f"{metadata['name']}.{secrets.token_hex(8)}"},
                        "involvedObject": {
                            "kind": involved["kind"],
                            "apiVersion": involved["apiVersion"],
                            "namespace": namespace,
                            "name": metadata["name"],
                            "uid": metadata["uid"],
                            "resourceVersion": metadata.get("resourceVersion", ""),
                        },
                        "type": event_type,
                        "reason": reason,
                        "message": message,
                        "source": {"component": component, "host": NODE_NAME},
                        "reportingComponent": component,
                        "reportingInstance": NODE_NAME,
                        "firstTimestamp": now,
                        "lastTimestamp": now,
                        "count": 1,
                    },
                )
                self._names[key] = event["metadata"]["name"]
            except ApiError:
                # The namespace is being deleted; there is nobody left to read the event.
                return

    def forget(self) -> None:
        with self._lock:
            self._names.clear()


def _repeated(now: str) -> Callable[[KubeObject], KubeObject]:
    def change(event: KubeObject) -> KubeObject:
        event["count"] = event.get("count", 1) + 1
        event["lastTimestamp"] = now
        return event

    return change
