"""Manifests and a bounded wait shared by the simulator tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def update_with_retry(
    read: Callable[[], T], change: Callable[[T], None], write: Callable[[T], T]
) -> T:
    """Read, change and write until no one else wrote in between (409), as controllers do."""
    from kubernetes.client.exceptions import ApiException

    for _ in range(50):
        current = read()
        change(current)
        try:
            return write(current)
        except ApiException as conflict:
            if conflict.status != 409:
                raise
    raise AssertionError("kept conflicting with other writers")


def deployment(
    name: str,
    *,
    replicas: int = 1,
    image: str = "aether-nodejs:20-slim",
    env: dict[str, str] | None = None,
    progress_deadline_seconds: int | None = None,
    strategy: str | None = None,
) -> dict[str, Any]:
    labels = {"app": "aether", "app_name": name}
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "initContainers": [{"name": "fetch", "image": "aether-fetcher:1"}],
                "containers": [
                    {
                        "name": "app",
                        "image": image,
                        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                        "ports": [{"containerPort": 8080}],
                    }
                ],
            },
        },
    }
    if progress_deadline_seconds is not None:
        spec["progressDeadlineSeconds"] = progress_deadline_seconds
    if strategy is not None:
        spec["strategy"] = {"type": strategy}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }


def condition(obj: Any, kind: str) -> Any:
    """The status condition of ``kind`` on a client model, or None."""
    return next((c for c in obj.status.conditions or [] if c.type == kind), None)
