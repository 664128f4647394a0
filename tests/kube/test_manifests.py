"""Workload synthesis: record in, dicts out, no cluster."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from chalicelib.contract import ArtifactKind
from chalicelib.manifests import WorkloadSpec, workload_manifests

DIGEST = "ab" * 32
TOKEN = "pull-secret-value-3f9c2a"
URL = f"https://api.aether.example/artifacts/{DIGEST}/download"
SPEC = WorkloadSpec(
    app_name="web",
    deployment_id="0b6f1c8e-4a52-4f0e-9a43-5d2e7c1b9f00",
    digest=DIGEST,
    node_major=24,
    start_command="npm start",
    env={"NODE_OPTIONS": "--max-old-space-size=256", "GREETING": "hi"},
    replicas=2,
    namespace="aether-apps",
    artifact_url=URL,
)


def _manifests(spec: WorkloadSpec = SPEC) -> dict[str, dict[str, Any]]:
    # The config Secret is looked up by name: it is the second Secret.
    return {
        ("ConfigSecret" if m["metadata"]["name"].startswith("web-config-") else m["kind"]): m
        for m in workload_manifests(spec, TOKEN)
    }


def _deployment(spec: WorkloadSpec = SPEC) -> dict[str, Any]:
    return _manifests(spec)["Deployment"]


def _pod(spec: WorkloadSpec = SPEC) -> dict[str, Any]:
    pod: dict[str, Any] = _deployment(spec)["spec"]["template"]["spec"]
    return pod


def _containers() -> list[dict[str, Any]]:
    pod = _pod()
    return [*pod["initContainers"], *pod["containers"]]


def _app() -> dict[str, Any]:
    container: dict[str, Any] = _pod()["containers"][0]
    return container


def _fetch() -> dict[str, Any]:
    container: dict[str, Any] = _pod()["initContainers"][0]
    return container


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


# -- shape -----------------------------------------------------------------------------------


def test_a_secret_a_deployment_and_a_service_in_apply_order() -> None:
    manifests = workload_manifests(SPEC, TOKEN)
    assert [(m["apiVersion"], m["kind"]) for m in manifests] == [
        ("v1", "Secret"),
        ("v1", "Secret"),
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
    ]
    config = f"web-config-{SPEC.deployment_id}"
    assert [m["metadata"]["name"] for m in manifests] == ["web-pull", config, "web", "web"]
    assert {m["metadata"]["namespace"] for m in manifests} == {"aether-apps"}


def test_without_config_there_is_no_config_secret_and_no_env_from() -> None:
    manifests = workload_manifests(replace(SPEC, env={}), TOKEN)
    assert [m["metadata"]["name"] for m in manifests] == ["web-pull", "web", "web"]
    app = manifests[1]["spec"]["template"]["spec"]["containers"][0]
    assert app["envFrom"] == []


def test_config_values_are_only_in_the_releases_own_secret() -> None:
    manifests = _manifests()
    secret = manifests["ConfigSecret"]
    assert secret["stringData"] == {"GREETING": "hi", "NODE_OPTIONS": "--max-old-space-size=256"}
    assert secret["immutable"] is True
    assert secret["metadata"]["labels"]["aether.dev/config"] == "true"
    assert secret["metadata"]["labels"]["deployment_id"] == SPEC.deployment_id
    assert _app()["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    for kind in ("Deployment", "Service", "Secret"):
        text = json.dumps(manifests[kind])
        assert "--max-old-space-size=256" not in text and '"hi"' not in text, kind


def test_a_restart_changes_only_the_pod_templates_annotation() -> None:
    restarted = _deployment(replace(SPEC, restarted_at="2026-12-01T10:00:00Z"))
    before = _deployment()
    annotations = restarted["spec"]["template"]["metadata"]["annotations"]
    assert annotations["aether.dev/restarted-at"] == "2026-12-01T10:00:00Z"
    del annotations["aether.dev/restarted-at"]
    assert restarted == before


def test_synthesis_is_deterministic_and_json_serialisable() -> None:
    first = json.dumps(workload_manifests(SPEC, TOKEN), sort_keys=True)
    again = json.dumps(
        workload_manifests(replace(SPEC, env=dict(reversed(SPEC.env.items()))), TOKEN),
        sort_keys=True,
    )
    assert first == again


# -- labels, annotations, selector -----------------------------------------------------------


def test_every_object_and_the_pod_template_carry_the_three_labels() -> None:
    labels = {"app": "aether", "app_name": "web", "deployment_id": SPEC.deployment_id}
    for manifest in workload_manifests(SPEC, TOKEN):
        own = dict(manifest["metadata"]["labels"])
        own.pop("aether.dev/config", None)  # the config Secret's, for its pruning
        assert own == labels
    assert _deployment()["spec"]["template"]["metadata"]["labels"] == labels


def test_the_digest_and_deployment_id_are_annotated() -> None:
    annotations = {
        "aether.dev/artifact-digest": DIGEST,
        "aether.dev/deployment-id": SPEC.deployment_id,
    }
    deployment = _deployment()
    assert deployment["metadata"]["annotations"] == annotations
    assert deployment["spec"]["template"]["metadata"]["annotations"] == annotations


def test_the_selectors_leave_out_the_deployment_id_so_a_new_one_rolls_the_same_deployment() -> None:
    stable = {"app": "aether", "app_name": "web"}
    manifests = _manifests()
    assert manifests["Deployment"]["spec"]["selector"] == {"matchLabels": stable}
    assert manifests["Service"]["spec"]["selector"] == stable
    other = _manifests(replace(SPEC, deployment_id="another"))
    assert other["Deployment"]["metadata"]["name"] == manifests["Deployment"]["metadata"]["name"]
    assert other["Deployment"]["spec"]["selector"] == manifests["Deployment"]["spec"]["selector"]


def test_the_service_targets_the_named_port() -> None:
    service = _manifests()["Service"]["spec"]
    assert service["type"] == "ClusterIP"
    assert service["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    assert _app()["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


# -- security --------------------------------------------------------------------------------


def test_pod_runs_as_uid_and_gid_1000_non_root() -> None:
    context = _pod()["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"], context["runAsNonRoot"]) == (
        1000,
        1000,
        True,
    )
    for container in _containers():
        security = container["securityContext"]
        assert (security["runAsUser"], security["runAsGroup"]) == (1000, 1000)
        assert security["runAsNonRoot"] is True


def test_every_container_has_a_read_only_root_filesystem() -> None:
    assert all(c["securityContext"]["readOnlyRootFilesystem"] is True for c in _containers())


def test_no_container_may_escalate_privileges() -> None:
    assert all(c["securityContext"]["allowPrivilegeEscalation"] is False for c in _containers())


def test_every_container_drops_all_capabilities() -> None:
    for container in _containers():
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_seccomp_is_runtime_default_for_the_pod_and_each_container() -> None:
    runtime_default = {"type": "RuntimeDefault"}
    assert _pod()["securityContext"]["seccompProfile"] == runtime_default
    assert all(c["securityContext"]["seccompProfile"] == runtime_default for c in _containers())


def test_no_service_account_token_and_no_service_links_are_mounted() -> None:
    assert _pod()["automountServiceAccountToken"] is False
    assert _pod()["enableServiceLinks"] is False


def test_nothing_privileged_or_from_the_host() -> None:
    text = json.dumps(_deployment())
    for field in ("privileged", "hostNetwork", "hostPID", "hostIPC", "hostPath", "hostPort"):
        assert field not in text


def test_every_container_has_requests_and_limits() -> None:
    for container in _containers():
        resources = container["resources"]
        assert set(resources["requests"]) == {"cpu", "memory"}
        assert set(resources["limits"]) == {"cpu", "memory"}


def test_termination_messages_fall_back_to_logs() -> None:
    assert {c["terminationMessagePolicy"] for c in _containers()} == {"FallbackToLogsOnError"}


# -- the fetcher and the shared volume -------------------------------------------------------


def test_the_init_container_is_the_fetcher_with_its_interface() -> None:
    fetch = _fetch()
    assert fetch["image"] == "aether-fetcher:1"
    env = _env(fetch)
    assert env["AETHER_ARTIFACT_URL"] == URL
    assert env["AETHER_ARTIFACT_DIGEST"] == DIGEST
    assert env["AETHER_DEST"] == "/app"


def test_the_pull_token_comes_only_from_the_secret_by_reference() -> None:
    token = next(e for e in _fetch()["env"] if e["name"] == "AETHER_PULL_TOKEN")
    assert token == {
        "name": "AETHER_PULL_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "web-pull", "key": "token"}},
    }
    assert "AETHER_PULL_TOKEN" not in _env(_app())
    secret = _manifests()["Secret"]
    assert secret["type"] == "Opaque"
    assert secret["stringData"] == {"token": TOKEN}
    assert "data" not in secret


def test_no_token_value_or_url_query_string_anywhere_in_the_deployment() -> None:
    text = json.dumps(_deployment())
    assert TOKEN not in text
    for marker in ("?", "X-Amz-", "Signature", "Expires="):
        assert marker not in text
    assert TOKEN not in json.dumps(_manifests()["Service"])


@pytest.mark.parametrize(
    "url",
    [
        f"https://bucket.s3.amazonaws.com/artifacts/web/{DIGEST}/app.tar.gz?X-Amz-Signature=abc",
        f"{URL}#fragment",
        f"https://user:secret@api.aether.example/artifacts/{DIGEST}/download",
        f"/artifacts/{DIGEST}/download",
        f"ftp://api.aether.example/artifacts/{DIGEST}/download",
    ],
)
def test_a_presigned_or_otherwise_unfit_artifact_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="artifact_url"):
        replace(SPEC, artifact_url=url)


def test_an_empty_dir_at_app_is_shared_by_the_fetcher_and_the_app() -> None:
    volumes = {v["name"]: v for v in _pod()["volumes"]}
    assert set(volumes["app"]) == {"name", "emptyDir"}
    assert volumes["app"]["emptyDir"]["sizeLimit"]
    assert {"name": "app", "mountPath": "/app"} in _fetch()["volumeMounts"]
    assert {"name": "app", "mountPath": "/app"} in _app()["volumeMounts"]


def test_the_app_gets_a_writable_tmp_since_its_root_is_read_only() -> None:
    volumes = {v["name"]: v for v in _pod()["volumes"]}
    assert "emptyDir" in volumes["tmp"]
    assert {"name": "tmp", "mountPath": "/tmp"} in _app()["volumeMounts"]
    assert all(m["mountPath"] != "/tmp" for m in _fetch()["volumeMounts"])


# -- the app container -----------------------------------------------------------------------


def test_the_app_runs_the_node_image_for_its_major() -> None:
    assert _app()["image"] == "aether-nodejs:24-slim"
    assert _pod(replace(SPEC, node_major=22))["containers"][0]["image"] == "aether-nodejs:22-slim"
    assert {c["imagePullPolicy"] for c in _containers()} == {"IfNotPresent"}


def test_the_start_command_runs_through_sh_in_app() -> None:
    custom = _pod(replace(SPEC, start_command="node server.js --port $PORT"))["containers"][0]
    assert custom["command"] == ["sh", "-c", "node server.js --port $PORT"]
    assert custom["workingDir"] == "/app"


def test_the_default_start_command_is_npm_start() -> None:
    assert _app()["command"] == ["sh", "-c", "npm start"]
    blank = _pod(replace(SPEC, start_command="  "))["containers"][0]
    assert blank["command"] == ["sh", "-c", "npm start"]


def test_port_is_the_only_value_in_the_spec_and_wins_over_the_config() -> None:
    env = _app()["env"]
    assert env == [{"name": "PORT", "value": "8080"}]
    custom = _pod(replace(SPEC, port=3000))["containers"][0]
    assert _env(custom)["PORT"] == "3000"


@pytest.mark.parametrize("name", ["PORT", "1BAD", "WITH-DASH", ""])
def test_reserved_or_invalid_env_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="env name"):
        replace(SPEC, env={name: "x"})


def test_readiness_is_a_tcp_probe_on_the_app_port() -> None:
    probe = _app()["readinessProbe"]
    assert probe["tcpSocket"] == {"port": "http"}
    assert "httpGet" not in probe


def test_rollout_settings() -> None:
    spec = _deployment(replace(SPEC, progress_deadline_seconds=45))["spec"]
    assert spec["replicas"] == 2
    assert spec["progressDeadlineSeconds"] == 45
    assert spec["revisionHistoryLimit"] == 3
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_pods_run_only_on_nodes_of_the_artifacts_platform() -> None:
    assert _pod()["nodeSelector"] == {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    arm = _pod(replace(SPEC, platform="linux/arm64"))
    assert arm["nodeSelector"] == {"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64"}


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Web", "-web", "web-", "9web", "a" * 64, "web_api", ""])
def test_an_app_name_that_cannot_name_a_service_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="app name"):
        replace(SPEC, app_name=name)


@pytest.mark.parametrize("digest", ["AB" * 32, "ab" * 31, "sha256:" + "ab" * 32])
def test_a_malformed_digest_is_refused(digest: str) -> None:
    with pytest.raises(ValueError, match="digest"):
        replace(SPEC, digest=digest)


def test_an_empty_pull_token_is_refused() -> None:
    with pytest.raises(ValueError, match="pull token"):
        workload_manifests(SPEC, "")


@pytest.mark.parametrize("platform", ["linux/386", "darwin/arm64", "amd64", ""])
def test_an_unknown_platform_is_refused(platform: str) -> None:
    with pytest.raises(ValueError, match="platform"):
        replace(SPEC, platform=platform)


# -- the node's layer cache ------------------------------------------------------------------

CACHED = replace(
    SPEC, artifact_kind=ArtifactKind.MANIFEST, layer_cache_dir="/var/lib/aether/layers"
)


def test_without_a_configured_cache_nothing_of_the_host_is_mounted() -> None:
    layered = replace(SPEC, artifact_kind=ArtifactKind.MANIFEST)
    assert "hostPath" not in json.dumps(_deployment(layered))
    archive = replace(CACHED, artifact_kind=ArtifactKind.ARCHIVE)  # an archive has no layers
    assert "hostPath" not in json.dumps(_deployment(archive))


def test_the_cache_is_the_only_host_path_and_only_the_fetcher_mounts_it() -> None:
    pod = _pod(CACHED)
    host = [v for v in pod["volumes"] if "hostPath" in v]
    assert host == [
        {
            "name": "layers",
            "hostPath": {"path": "/var/lib/aether/layers", "type": "DirectoryOrCreate"},
        }
    ]
    (fetch,) = pod["initContainers"]
    (app,) = pod["containers"]
    assert {"name": "layers", "mountPath": "/layers"} in fetch["volumeMounts"]
    assert [m["name"] for m in app["volumeMounts"]] == ["app", "tmp"]
    env = _env(fetch)
    assert env["AETHER_LAYER_CACHE"] == "/layers"
    assert env["AETHER_LAYER_CACHE_MAX_BYTES"] == str(4 * 1024**3)
    text = json.dumps(_deployment(CACHED))
    for field in ("privileged", "hostNetwork", "hostPID", "hostIPC", "hostPort"):
        assert field not in text


def test_with_the_cache_the_fetcher_is_another_user_than_the_app_in_the_apps_group() -> None:
    pod = _pod(CACHED)
    fetch, app = pod["initContainers"][0], pod["containers"][0]
    assert (fetch["securityContext"]["runAsUser"], fetch["securityContext"]["runAsGroup"]) == (
        1001,
        1000,
    )
    assert (app["securityContext"]["runAsUser"], app["securityContext"]["runAsGroup"]) == (
        1000,
        1000,
    )
    for container in (fetch, app):  # the restricted settings hold for both
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}


@pytest.mark.parametrize("path", ["relative/layers", "/var/lib/../layers", "/", "/var/lib/"])
def test_a_cache_path_must_be_a_normalized_absolute_path(path: str) -> None:
    with pytest.raises(ValueError, match="layer_cache_dir"):
        replace(CACHED, layer_cache_dir=path)


# -- Jobs ---------------------------------------------------------------------------------


def _job(**changes: Any) -> Any:
    from chalicelib.manifests import JobPurpose, JobSpec

    fields: dict[str, Any] = {
        "release": SPEC,
        "purpose": JobPurpose.RUN,
        "command": ("node", "-e", "1"),
        "deadline_seconds": 60,
        "ttl_seconds": 3600,
        "created_by": "alice",
        "version": 4,
        "run_id": "0123456789ab",
        **changes,
    }
    return JobSpec(**fields)


def test_a_job_runs_once_in_the_apps_own_hardened_pod() -> None:
    from chalicelib.manifests import job_manifest

    job = job_manifest(_job())
    app_pod = _deployment()["spec"]["template"]["spec"]
    pod = job["spec"]["template"]["spec"]
    assert (job["apiVersion"], job["kind"], job["metadata"]["name"]) == (
        "batch/v1",
        "Job",
        "run-0123456789ab",
    )
    assert job["spec"]["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    assert (job["spec"]["activeDeadlineSeconds"], job["spec"]["ttlSecondsAfterFinished"]) == (
        60,
        3600,
    )
    assert pod["initContainers"] == app_pod["initContainers"]
    assert pod["securityContext"] == app_pod["securityContext"]
    assert pod["volumes"] == app_pod["volumes"]
    (container,) = pod["containers"]
    (app,) = app_pod["containers"]
    assert container["command"] == ["node", "-e", "1"]
    for same in ("image", "envFrom", "securityContext", "volumeMounts", "workingDir"):
        assert container[same] == app[same], same
    assert "readinessProbe" not in container and "ports" not in container
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["app"] == "aether-job", "never selected by the app's Service"
    assert (labels["aether.dev/run-id"], labels["deployment_id"]) == (
        "0123456789ab",
        SPEC.deployment_id,
    )
    assert job["metadata"]["annotations"]["aether.dev/created-by"] == "alice"


def test_a_release_jobs_name_fits_a_label_whatever_the_apps_name() -> None:
    from chalicelib.manifests import JobPurpose, job_manifest

    long_name = replace(SPEC, app_name="a" * 63)
    job = job_manifest(_job(release=long_name, purpose=JobPurpose.RELEASE, run_id=None))
    assert job["metadata"]["name"] == f"release-{SPEC.deployment_id}"
    assert len(job["metadata"]["name"]) <= 63


@pytest.mark.parametrize(
    "changes",
    [
        {"command": ()},
        {"command": ("node", "")},
        {"deadline_seconds": 0},
        {"ttl_seconds": -1},
        {"run_id": None},
    ],
)
def test_a_job_spec_refuses_what_no_job_could_run(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _job(**changes)
