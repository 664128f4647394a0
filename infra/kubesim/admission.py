"""Defaulting and the few validations the simulator performs when an object is written.

A real API server validates every field; here only what callers are likely to get wrong and
would otherwise silently misbehave is rejected (names, selectors, containers, ports).
"""

from __future__ import annotations

import base64
import ipaddress
import re
from typing import Any

from infra.kubesim.resources import (
    DEPLOYMENTS,
    JOBS,
    NAMESPACES,
    PODS,
    REPLICA_SETS,
    SECRETS,
    SERVICES,
    KubeObject,
    ResourceKind,
)
from infra.kubesim.selectors import label_selector_from_match, labels_match

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_SERVICE_NETWORK = ipaddress.ip_network("10.96.0.0/16")
_NODE_PORT_RANGE = range(30000, 32768)
# The labels the API server puts on a Job's pod template (and selects its pods by).
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
_LEGACY_JOB_LABELS = ("controller-uid", "job-name")
_JOB_RESTART_POLICIES = ("Never", "OnFailure")


def validate_name(kind: ResourceKind, name: str) -> None:
    if kind in (NAMESPACES, SERVICES):
        pattern, limit = (_DNS_1035_LABEL if kind is SERVICES else _DNS_LABEL), 63
    else:
        pattern, limit = _DNS_SUBDOMAIN, 253
    if not name:
        raise kind.invalid(name, "metadata.name: Required value: name or generateName is required")
    if len(name) > limit or not pattern.match(name):
        raise kind.invalid(name, f'metadata.name: Invalid value: "{name}": must be a DNS name')


def _default_probe(probe: dict[str, Any]) -> None:
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)


def _default_container(container: dict[str, Any]) -> None:
    image = container.get("image", "")
    untagged = ":" not in image.rsplit("/", 1)[-1] and "@" not in image
    pull_always = untagged or image.endswith(":latest")
    container.setdefault("imagePullPolicy", "Always" if pull_always else "IfNotPresent")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for probe_field in ("readinessProbe", "livenessProbe", "startupProbe"):
        if isinstance(container.get(probe_field), dict):
            _default_probe(container[probe_field])


def _validate_pod_spec(kind: ResourceKind, name: str, spec: dict[str, Any], path: str) -> None:
    containers = spec.get("containers") or []
    if not containers:
        raise kind.invalid(name, f"{path}.containers: Required value")
    seen: set[str] = set()
    for field in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(field) or []):
            container_name = container.get("name", "")
            if not container_name:
                raise kind.invalid(name, f"{path}.{field}[{index}].name: Required value")
            if container_name in seen:
                raise kind.invalid(
                    name, f'{path}.{field}[{index}].name: Duplicate value: "{container_name}"'
                )
            seen.add(container_name)
            if not container.get("image"):
                raise kind.invalid(name, f"{path}.{field}[{index}].image: Required value")


def _default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            _default_container(container)


def _validate_selector_matches_template(kind: ResourceKind, obj: KubeObject) -> None:
    name = obj["metadata"]["name"]
    spec = obj.setdefault("spec", {})
    selector = spec.get("selector")
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        raise kind.invalid(name, "spec.selector: Required value")
    template = spec.get("template") or {}
    if not labels_match(label_selector_from_match(selector), template):
        raise kind.invalid(
            name,
            "spec.template.metadata.labels: Invalid value: "
            "`selector` does not match template `labels`",
        )
    _validate_pod_spec(kind, name, template.get("spec") or {}, "spec.template.spec")


def _default_workload(obj: KubeObject) -> None:
    spec = obj["spec"]
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    template = spec.setdefault("template", {})
    template.setdefault("metadata", {})
    _default_pod_spec(template.setdefault("spec", {}))


class Admission:
    """Defaulting per kind; owns the allocators for Service cluster IPs and node ports."""

    def __init__(self) -> None:
        self._next_host = 10
        self._next_node_port = _NODE_PORT_RANGE.start

    def admit(self, kind: ResourceKind, obj: KubeObject, old: KubeObject | None) -> None:
        """Default and validate ``obj`` in place; ``old`` is the stored object on updates."""
        if kind is NAMESPACES:
            self._admit_namespace(obj)
        elif kind is PODS:
            self._admit_pod(obj)
        elif kind is SERVICES:
            self._admit_service(obj, old)
        elif kind is SECRETS:
            self._admit_secret(obj)
        elif kind is JOBS:
            _admit_job(obj, old)
        elif kind in (DEPLOYMENTS, REPLICA_SETS):
            _validate_selector_matches_template(kind, obj)
            _default_workload(obj)
            if kind is DEPLOYMENTS:
                self._default_deployment(obj)

    @staticmethod
    def _admit_namespace(obj: KubeObject) -> None:
        name = obj["metadata"]["name"]
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")

    @staticmethod
    def _admit_pod(obj: KubeObject) -> None:
        spec = obj.setdefault("spec", {})
        _validate_pod_spec(PODS, obj["metadata"]["name"], spec, "spec")
        _default_pod_spec(spec)
        obj.setdefault("status", {}).setdefault("phase", "Pending")

    def _admit_service(self, obj: KubeObject, old: KubeObject | None) -> None:
        name = obj["metadata"]["name"]
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        old_spec = (old or {}).get("spec") or {}
        # The cluster IP is immutable: an update that leaves it out keeps the allocated one.
        cluster_ip = spec.get("clusterIP") or old_spec.get("clusterIP") or self._allocate_ip()
        if old_spec.get("clusterIP") and cluster_ip != old_spec["clusterIP"]:
            raise SERVICES.invalid(name, "spec.clusterIP: Invalid value: field is immutable")
        spec["clusterIP"] = cluster_ip
        spec["clusterIPs"] = [cluster_ip]
        ports = spec.get("ports") or []
        if not ports and cluster_ip != "None":
            raise SERVICES.invalid(name, "spec.ports: Required value")
        old_node_ports = {p.get("port"): p.get("nodePort") for p in old_spec.get("ports") or []}
        for index, port in enumerate(ports):
            if not isinstance(port.get("port"), int):
                raise SERVICES.invalid(name, f"spec.ports[{index}].port: Required value")
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port["port"])
            if spec["type"] in ("NodePort", "LoadBalancer") and "nodePort" not in port:
                port["nodePort"] = old_node_ports.get(port["port"]) or self._allocate_node_port()
        obj.setdefault("status", {}).setdefault("loadBalancer", {})

    def _allocate_ip(self) -> str:
        address = _SERVICE_NETWORK.network_address + self._next_host
        self._next_host += 1
        return str(address)

    def _allocate_node_port(self) -> int:
        port = self._next_node_port
        self._next_node_port += 1
        return port

    @staticmethod
    def _admit_secret(obj: KubeObject) -> None:
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()

    @staticmethod
    def _default_deployment(obj: KubeObject) -> None:
        spec = obj["spec"]
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxSurge", "25%")
            rolling.setdefault("maxUnavailable", "25%")


def _admit_job(obj: KubeObject, old: KubeObject | None) -> None:
    """A Job's defaults and the rules that matter here: its template runs to completion, is
    immutable, and selects its pods by the Job's uid (labels the API server adds)."""
    name = obj["metadata"]["name"]
    spec = obj.setdefault("spec", {})
    template = spec.get("template")
    if not isinstance(template, dict):
        raise JOBS.invalid(name, "spec.template: Required value")
    pod_spec = template.setdefault("spec", {})
    policy = pod_spec.get("restartPolicy")
    if policy not in _JOB_RESTART_POLICIES:
        raise JOBS.invalid(
            name,
            f'spec.template.spec.restartPolicy: Unsupported value: "{policy or ""}": '
            'supported values: "OnFailure", "Never"',
        )
    for field in ("completions", "parallelism"):
        if spec.setdefault(field, 1) != 1:
            raise JOBS.invalid(
                name, f"spec.{field}: Invalid value: the simulator runs one pod per Job"
            )
    for field, minimum in (
        ("backoffLimit", 0),
        ("activeDeadlineSeconds", 1),
        ("ttlSecondsAfterFinished", 0),
    ):
        value = spec.get(field)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < minimum
        ):
            raise JOBS.invalid(
                name, f"spec.{field}: Invalid value: {value!r}: must be an integer >= {minimum}"
            )
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    if old is not None:
        old_spec = old.get("spec") or {}
        for field in ("template", "selector", "completions", "completionMode"):
            if spec.get(field) != old_spec.get(field):
                raise JOBS.invalid(name, f"spec.{field}: Invalid value: field is immutable")
        return
    uid = obj["metadata"]["uid"]
    if spec.get("selector") is not None:
        raise JOBS.invalid(
            name, "spec.selector: Invalid value: the simulator generates every Job's selector"
        )
    spec["selector"] = {"matchLabels": {JOB_UID_LABEL: uid}}
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    for uid_label, name_label in ((JOB_UID_LABEL, JOB_NAME_LABEL), _LEGACY_JOB_LABELS):
        labels[uid_label] = uid
        labels[name_label] = name
    _validate_pod_spec(JOBS, name, pod_spec, "spec.template.spec")
    _default_pod_spec(pod_spec)
