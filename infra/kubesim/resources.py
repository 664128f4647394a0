"""The kinds the simulator serves, and how each one's URLs, names and errors are spelled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.kubesim.api_errors import ApiError

KubeObject = dict[str, Any]


@dataclass(frozen=True)
class ResourceKind:
    plural: str
    kind: str
    group: str = ""
    version: str = "v1"
    namespaced: bool = True
    status_subresource: bool = False
    # Only kinds whose controllers report observedGeneration get metadata.generation bumps.
    tracks_generation: bool = False
    # DELETE answers with the object for these; with a Status for the others.
    delete_returns_object: bool = False
    # Status fields the API server always writes (Go fields without omitempty): a new
    # ReplicaSet reads ``replicas: 0`` before its controller syncs it, and clients require it.
    initial_status: tuple[tuple[str, Any], ...] = ()
    # What DELETE does to dependents when the request does not say: Jobs orphan their pods
    # (batch/v1 keeps that legacy default; kubectl asks for Background explicitly).
    default_propagation: str = "Background"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified_name(self) -> str:
        """``deployments.apps`` or ``pods``, as it appears in API error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def not_found(self, name: str) -> ApiError:
        return ApiError(
            404,
            "NotFound",
            f'{self.qualified_name} "{name}" not found',
            name=name,
            group=self.group,
            kind=self.plural,
        )

    def already_exists(self, name: str) -> ApiError:
        return ApiError(
            409,
            "AlreadyExists",
            f'{self.qualified_name} "{name}" already exists',
            name=name,
            group=self.group,
            kind=self.plural,
        )

    def conflict(self, name: str) -> ApiError:
        return ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {self.qualified_name} "{name}": the object has '
            "been modified; please apply your changes to the latest version and try again",
            name=name,
            group=self.group,
            kind=self.plural,
        )

    def invalid(self, name: str, cause: str) -> ApiError:
        kind_name = f"{self.kind}.{self.group}" if self.group else self.kind
        return ApiError(
            422,
            "Invalid",
            f'{kind_name} "{name}" is invalid: {cause}',
            name=name,
            group=self.group,
            kind=self.kind,
        )


NAMESPACES = ResourceKind("namespaces", "Namespace", namespaced=False, status_subresource=True)
PODS = ResourceKind("pods", "Pod", status_subresource=True, delete_returns_object=True)
SERVICES = ResourceKind("services", "Service", status_subresource=True, delete_returns_object=True)
SECRETS = ResourceKind("secrets", "Secret")
CONFIG_MAPS = ResourceKind("configmaps", "ConfigMap")
EVENTS = ResourceKind("events", "Event")
DEPLOYMENTS = ResourceKind(
    "deployments", "Deployment", group="apps", status_subresource=True, tracks_generation=True
)
REPLICA_SETS = ResourceKind(
    "replicasets",
    "ReplicaSet",
    group="apps",
    status_subresource=True,
    tracks_generation=True,
    initial_status=(("replicas", 0),),
)
JOBS = ResourceKind(
    "jobs", "Job", group="batch", status_subresource=True, default_propagation="Orphan"
)

ALL_KINDS = (
    NAMESPACES,
    PODS,
    SERVICES,
    SECRETS,
    CONFIG_MAPS,
    EVENTS,
    DEPLOYMENTS,
    REPLICA_SETS,
    JOBS,
)
# The API groups served besides the core one, in discovery order.
API_GROUPS = ("apps", "batch")


def find_kind(group: str, plural: str) -> ResourceKind | None:
    return next((k for k in ALL_KINDS if k.group == group and k.plural == plural), None)
