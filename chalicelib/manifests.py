"""An app's Kubernetes objects: a ``WorkloadSpec`` in, its Secret, Deployment and Service out.

Pure: no client, no I/O. The dicts are ready for server-side apply (``chalicelib.kube`` applies
them). The labels defined here are also what the cluster client selects the app's pods by.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from chalicelib import contract

DIGEST_ANNOTATION = "aether.dev/artifact-digest"
DEPLOYMENT_ANNOTATION = "aether.dev/deployment-id"
# Changing it replaces every pod of the same release (what ``kubectl rollout restart`` does).
RESTARTED_ANNOTATION = "aether.dev/restarted-at"
# Labels the Secret that holds one release's config values.
CONFIG_LABEL = "aether.dev/config"
FETCH_CONTAINER = "fetch"
APP_CONTAINER = "app"
APP_DIR = "/app"
PULL_TOKEN_KEY = "token"  # noqa: S105 - the key in the Secret, not a value
RUN_AS = 1000
# The fetcher's user when it writes the node's layer cache: not the app's, so that the app
# cannot write, chmod or replace the cached files it sees through hard links. Its group is
# the app's, so that what it puts in the pod's own volume stays the app's to write.
FETCH_RUN_AS = 1001
LAYER_CACHE_VOLUME = "layers"
LAYER_CACHE_MOUNT = "/layers"
DEFAULT_LAYER_CACHE_MAX_BYTES = 4 * 1024**3

_APP_NAME = re.compile(contract.APP_NAME_PATTERN)
_DIGEST = re.compile(contract.DIGEST_PATTERN)
_ENV_NAME = re.compile(contract.ENV_NAME_PATTERN)


@dataclass(frozen=True)
class Resources:
    """Requests and limits for the app and the fetcher, and the size of the pod's scratch."""

    cpu_request: str = "100m"
    memory_request: str = "128Mi"
    cpu_limit: str = "1"
    memory_limit: str = "512Mi"
    fetch_cpu_request: str = "50m"
    fetch_memory_request: str = "64Mi"
    fetch_cpu_limit: str = "500m"
    fetch_memory_limit: str = "256Mi"
    # The fetcher stages the download on the same volume: about twice the unpacked app.
    app_volume_limit: str = "2Gi"
    tmp_volume_limit: str = "256Mi"


@dataclass(frozen=True)
class WorkloadSpec:
    """One deployment of one app, as the data plane needs it."""

    app_name: str
    deployment_id: str
    digest: str
    node_major: int
    start_command: str
    env: Mapping[str, str]
    replicas: int
    namespace: str
    # The control plane's /artifacts/{digest}/download URL: it 307s to a fresh presigned GET
    # on every call, so pods can restart or scale long after the deployment (never presigned).
    artifact_url: str
    # A manifest's pods fetch each of its layers from the same URL, by the layer's digest.
    artifact_kind: contract.ArtifactKind = contract.ArtifactKind.ARCHIVE
    platform: str = contract.DEFAULT_PLATFORM
    fetcher_image: str = "aether-fetcher:1"
    app_image_prefix: str = "aether-nodejs"
    progress_deadline_seconds: int = 120
    port: int = 8080
    revision_history_limit: int = 3
    resources: Resources = field(default_factory=Resources)
    # The node's layer cache (an absolute host path), mounted into the fetcher only; None:
    # every pod downloads and extracts every layer. Only a manifest's pods use it.
    layer_cache_dir: str | None = None
    layer_cache_max_bytes: int = DEFAULT_LAYER_CACHE_MAX_BYTES
    # When the release's pods were last restarted (RFC 3339), or None.
    restarted_at: str | None = None

    def __post_init__(self) -> None:
        if not _APP_NAME.fullmatch(self.app_name):
            raise ValueError(f"app name {self.app_name!r} must be {contract.APP_NAME_RULE}")
        if not _DIGEST.fullmatch(self.digest):
            raise ValueError("digest must be 64 lowercase hex characters")
        if not self.deployment_id or len(self.deployment_id) > 63:
            raise ValueError("deployment_id must be a label value (1-63 characters)")
        url = urlsplit(self.artifact_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ValueError("artifact_url must be an absolute http(s) URL")
        if url.query or url.fragment or url.username or url.password:
            # A query string is where presigned credentials live; they expire and leak.
            raise ValueError("artifact_url must carry no query, fragment or credentials")
        for name in self.env:
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"env name {name!r} is not a valid variable name")
            if name in contract.RESERVED_ENV_NAMES:
                raise ValueError(f"env name {name!r} is set by Aether")
        if self.replicas < 0:
            raise ValueError("replicas must not be negative")
        if not 1 <= self.port <= 65535:
            raise ValueError("port must be 1-65535")
        if self.platform not in contract.PLATFORMS:
            raise ValueError(f"platform must be one of {', '.join(contract.PLATFORMS)}")
        cache = self.layer_cache_dir
        if cache is not None and (
            not cache.startswith("/") or posixpath.normpath(cache) != cache or cache == "/"
        ):
            raise ValueError("layer_cache_dir must be a normalized absolute path other than /")
        if self.layer_cache_max_bytes < 1:
            raise ValueError("layer_cache_max_bytes must be positive")

    @property
    def uses_layer_cache(self) -> bool:
        return (
            self.layer_cache_dir is not None
            and self.artifact_kind == contract.ArtifactKind.MANIFEST
        )

    @property
    def app_image(self) -> str:
        return f"{self.app_image_prefix}:{self.node_major}-slim"

    @property
    def pull_secret_name(self) -> str:
        return pull_secret_name(self.app_name)

    @property
    def config_secret_name(self) -> str:
        return config_secret_name(self.app_name, self.deployment_id)


def pull_secret_name(app_name: str) -> str:
    return f"{app_name}-pull"


def config_secret_name(app_name: str, deployment_id: str) -> str:
    """One Secret per release: pods of an older release, still serving during a rollout or
    restarting, keep reading their own values."""
    return f"{app_name}-config-{deployment_id}"


def selector_labels(app_name: str) -> dict[str, str]:
    """What the Deployment and Service select on: stable across deployments of the app."""
    return {"app": "aether", "app_name": app_name}


def workload_labels(app_name: str, deployment_id: str) -> dict[str, str]:
    return {**selector_labels(app_name), "deployment_id": deployment_id}


def workload_manifests(spec: WorkloadSpec, pull_token: str) -> list[dict[str, Any]]:
    """The app's Secrets, Deployment and Service, in the order they must be applied.

    Config values go only into the release's own Secret, which the app container reads
    whole (``envFrom``): the Deployment, its pods and their events never hold a value.
    """
    if not pull_token:
        raise ValueError("a pull token is required")
    secrets = [_secret(spec, pull_token)]
    if spec.env:
        secrets.append(_config_secret(spec))
    return [*secrets, _deployment(spec), _service(spec)]


def _metadata(spec: WorkloadSpec, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": spec.namespace,
        "labels": workload_labels(spec.app_name, spec.deployment_id),
        "annotations": {DIGEST_ANNOTATION: spec.digest, DEPLOYMENT_ANNOTATION: spec.deployment_id},
    }


def _secret(spec: WorkloadSpec, pull_token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(spec, spec.pull_secret_name),
        "type": "Opaque",
        "stringData": {PULL_TOKEN_KEY: pull_token},
    }


def _config_secret(spec: WorkloadSpec) -> dict[str, Any]:
    metadata = _metadata(spec, spec.config_secret_name)
    metadata["labels"] = {**metadata["labels"], CONFIG_LABEL: "true"}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "immutable": True,
        "stringData": {name: spec.env[name] for name in sorted(spec.env)},
    }


def config_secrets_selector(app_name: str, keep_deployment_id: str) -> str:
    """The config Secrets of the app's releases other than ``keep_deployment_id``'s."""
    return f"{label_selector(app_name)},{CONFIG_LABEL}=true,deployment_id!={keep_deployment_id}"


def _container_security(user: int = RUN_AS) -> dict[str, Any]:
    return {
        "runAsUser": user,
        "runAsGroup": RUN_AS,
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _fetch_container(spec: WorkloadSpec) -> dict[str, Any]:
    limits = spec.resources
    # Only a manifest says its format: an archive's pod spec stays what it always was.
    layered = spec.artifact_kind == contract.ArtifactKind.MANIFEST
    format_env = [{"name": "AETHER_ARTIFACT_FORMAT", "value": "manifest"}] if layered else []
    mounts = [{"name": "app", "mountPath": APP_DIR}]
    if spec.uses_layer_cache:
        format_env += [
            {"name": "AETHER_LAYER_CACHE", "value": LAYER_CACHE_MOUNT},
            {"name": "AETHER_LAYER_CACHE_MAX_BYTES", "value": str(spec.layer_cache_max_bytes)},
        ]
        mounts.append({"name": LAYER_CACHE_VOLUME, "mountPath": LAYER_CACHE_MOUNT})
    return {
        "name": FETCH_CONTAINER,
        "image": spec.fetcher_image,
        "imagePullPolicy": "IfNotPresent",
        "env": [
            {"name": "AETHER_ARTIFACT_URL", "value": spec.artifact_url},
            {"name": "AETHER_ARTIFACT_DIGEST", "value": spec.digest},
            {"name": "AETHER_DEST", "value": APP_DIR},
            *format_env,
            {
                "name": "AETHER_PULL_TOKEN",
                "valueFrom": {
                    "secretKeyRef": {"name": spec.pull_secret_name, "key": PULL_TOKEN_KEY}
                },
            },
        ],
        "volumeMounts": mounts,
        "resources": {
            "requests": {"cpu": limits.fetch_cpu_request, "memory": limits.fetch_memory_request},
            "limits": {"cpu": limits.fetch_cpu_limit, "memory": limits.fetch_memory_limit},
        },
        "securityContext": _container_security(FETCH_RUN_AS if spec.uses_layer_cache else RUN_AS),
        # The fetcher's last stderr line ("fetch: error: digest mismatch ...") becomes the
        # termination message, so the reason shows in the pod's status.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _app_container(spec: WorkloadSpec) -> dict[str, Any]:
    command = ["sh", "-c", spec.start_command.strip() or contract.DEFAULT_START_COMMAND]
    return {
        **_release_container(spec, APP_CONTAINER, command),
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        # TCP, not HTTP GET /: the contract with an app is "listen on $PORT"; many APIs answer
        # 404 (a probe failure) or need auth on /, and would never become ready.
        # From the container's start, every second (Kubernetes' least period): a new release
        # takes traffic within a second of listening, and a stuck one leaves within three.
        "readinessProbe": {
            "tcpSocket": {"port": "http"},
            "initialDelaySeconds": 0,
            "periodSeconds": 1,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
            "successThreshold": 1,
        },
    }


def _release_container(spec: WorkloadSpec, name: str, command: list[str]) -> dict[str, Any]:
    """A container running ``command`` in the release's extracted artifact, with its config:
    the app's, a release command's or a one-off run's."""
    limits = spec.resources
    config = [{"secretRef": {"name": spec.config_secret_name}}] if spec.env else []
    return {
        "name": name,
        "image": spec.app_image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "workingDir": APP_DIR,
        # An ``env`` entry wins over ``envFrom``: PORT stays the platform's.
        "envFrom": config,
        "env": [{"name": "PORT", "value": str(spec.port)}],
        "volumeMounts": [
            {"name": "app", "mountPath": APP_DIR},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the pod's own emptyDir
        ],
        "resources": {
            "requests": {"cpu": limits.cpu_request, "memory": limits.memory_request},
            "limits": {"cpu": limits.cpu_limit, "memory": limits.memory_limit},
        },
        "securityContext": _container_security(),
        # The end of the output becomes the termination message: why a command failed.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _deployment(spec: WorkloadSpec) -> dict[str, Any]:
    labels = workload_labels(spec.app_name, spec.deployment_id)
    annotations = {DIGEST_ANNOTATION: spec.digest, DEPLOYMENT_ANNOTATION: spec.deployment_id}
    if spec.restarted_at is not None:
        annotations[RESTARTED_ANNOTATION] = spec.restarted_at
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(spec, spec.app_name),
        "spec": {
            "replicas": spec.replicas,
            # Only the stable labels: a new deployment_id rolls this same Deployment.
            "selector": {"matchLabels": selector_labels(spec.app_name)},
            # The old pods keep serving until the new ones are ready; a failed rollout leaves
            # the previous version up.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "progressDeadlineSeconds": spec.progress_deadline_seconds,
            "revisionHistoryLimit": spec.revision_history_limit,
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": _pod_spec(spec, _app_container(spec)),
            },
        },
    }


def _pod_spec(spec: WorkloadSpec, container: dict[str, Any]) -> dict[str, Any]:
    """The hardened pod every container of an app runs in: the fetcher first, no service
    account token, non-root, the release's own volumes."""
    return {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        # Only nodes that can run the artifact's native code (its addons).
        "nodeSelector": contract.node_selector(spec.platform),
        "securityContext": {
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "initContainers": [_fetch_container(spec)],
        "containers": [container],
        "volumes": _volumes(spec),
    }


def _volumes(spec: WorkloadSpec) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {"name": "app", "emptyDir": {"sizeLimit": spec.resources.app_volume_limit}},
        {"name": "tmp", "emptyDir": {"sizeLimit": spec.resources.tmp_volume_limit}},
    ]
    if spec.uses_layer_cache:
        # Only the fetcher mounts it; the app container sees the cached files only as the
        # read-only hard links the fetcher made in its own emptyDir.
        host_path = {"path": spec.layer_cache_dir, "type": "DirectoryOrCreate"}
        volumes.append({"name": LAYER_CACHE_VOLUME, "hostPath": host_path})
    return volumes


# -- Jobs: a release command, a one-off run ----------------------------------------------------

JOB_CONTAINER = "job"
# What a Job's pods are labelled with instead of ``app: aether``: the app's Service and
# Deployment select ``app: aether``, and must never send traffic to, or count, a Job's pod.
JOB_APP_LABEL = "aether-job"
JOB_PURPOSE_LABEL = "aether.dev/job"
RUN_ID_LABEL = "aether.dev/run-id"
CREATED_BY_ANNOTATION = "aether.dev/created-by"
VERSION_ANNOTATION = "aether.dev/release-version"
# The label the Job controller puts on a Job's pods (and the simulator's does too).
JOB_NAME_LABEL = "job-name"


class JobPurpose(StrEnum):
    RELEASE = "release"  # the release command, once per release, before its rollout
    RUN = "run"  # a command someone asked to run (``aether run``)


@dataclass(frozen=True)
class JobSpec:
    """A command run to completion, once, in a pod of ``release`` (its artifact, config and
    image, the same hardened pod as its app's)."""

    release: WorkloadSpec
    purpose: JobPurpose
    command: tuple[str, ...]
    deadline_seconds: int
    ttl_seconds: int
    created_by: str
    version: int | None = None
    run_id: str | None = None

    def __post_init__(self) -> None:
        if not self.command or not all(self.command):
            raise ValueError("a Job needs a command of non-empty words")
        if self.deadline_seconds < 1 or self.ttl_seconds < 0:
            raise ValueError("deadline_seconds must be positive and ttl_seconds not negative")
        if (self.purpose == JobPurpose.RUN) != (self.run_id is not None):
            raise ValueError("a run, and only a run, has a run_id")

    @property
    def name(self) -> str:
        if self.run_id is not None:
            return run_job_name(self.run_id)
        return release_job_name(self.release.deployment_id)


def release_job_name(deployment_id: str) -> str:
    """One per release; a name of at most 63 characters (it becomes the pods' job-name label),
    whatever the app's name."""
    return f"release-{deployment_id}"


def run_job_name(run_id: str) -> str:
    return f"run-{run_id}"


def job_labels(app_name: str, purpose: JobPurpose, run_id: str | None = None) -> dict[str, str]:
    labels = {"app": JOB_APP_LABEL, "app_name": app_name, JOB_PURPOSE_LABEL: purpose.value}
    if run_id is not None:
        labels[RUN_ID_LABEL] = run_id
    return labels


def jobs_selector(app_name: str, purpose: JobPurpose) -> str:
    return ",".join(f"{key}={value}" for key, value in job_labels(app_name, purpose).items())


def job_manifest(job: JobSpec) -> dict[str, Any]:
    """The Job: one pod, never restarted nor retried (``backoffLimit: 0``: a release command
    or a run that fails is reported, not run again), stopped at its deadline, and deleted
    with its pod ``ttl_seconds`` after it finished.

    The release's Secrets (its config, the app's pull token) must exist: a rollout applies
    them, and a run starts from a release that serves.
    """
    release = job.release
    labels = {
        **job_labels(release.app_name, job.purpose, job.run_id),
        "deployment_id": release.deployment_id,
    }
    annotations = {
        DIGEST_ANNOTATION: release.digest,
        DEPLOYMENT_ANNOTATION: release.deployment_id,
        CREATED_BY_ANNOTATION: job.created_by,
    }
    if job.version is not None:
        annotations[VERSION_ANNOTATION] = str(job.version)
    pod = _pod_spec(release, _release_container(release, JOB_CONTAINER, list(job.command)))
    pod["restartPolicy"] = "Never"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job.name,
            "namespace": release.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": job.deadline_seconds,
            "ttlSecondsAfterFinished": job.ttl_seconds,
            "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod},
        },
    }


def _service(spec: WorkloadSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, spec.app_name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(spec.app_name),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def label_selector(app_name: str, deployment_id: str | None = None) -> str:
    """The label selector for the app's objects, or for one deployment's pods."""
    labels = (
        workload_labels(app_name, deployment_id) if deployment_id else selector_labels(app_name)
    )
    return ",".join(f"{key}={value}" for key, value in labels.items())
