"""Readiness: can the control plane reach everything it depends on?"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.errors import is_dependency_failure
from chalicelib.kube import Cluster
from chalicelib.records import Application
from chalicelib.storage import ArtifactStore


@dataclass
class Readiness:
    checks: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(result in {"ok", "not configured"} for result in self.checks.values())

    def to_json(self) -> dict[str, Any]:
        if self.ready:
            return {"status": "ready", "checks": self.checks}
        failing = ", ".join(name for name, result in self.checks.items() if result != "ok")
        return {
            "code": "service_unavailable",
            "message": f"not ready: {failing} unavailable",
            "checks": self.checks,
        }


def readiness(store: ArtifactStore, cluster: Cluster | None) -> Readiness:
    report = Readiness()
    report.checks["dynamodb"] = _probe(Application.describe_table)
    report.checks["s3"] = _probe(store.ping)
    report.checks["kubernetes"] = "not configured" if cluster is None else _probe(cluster.ping)
    return report


def _probe(check: Callable[[], Any]) -> str:
    try:
        check()
    except Exception as exc:
        if is_dependency_failure(exc):
            return "unavailable"
        raise
    return "ok"
