"""Target platforms: recorded on the artifact, and only deployed to a cluster that runs them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import APPS_NAMESPACE, Api
from tests.uploads import put, random_bytes
from tests.verification.delivery import deliver_pending_events

ARM = "linux/arm64"


@pytest.fixture
def cluster_runs(
    control_plane: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], None]]:
    """Set AETHER_CLUSTER_PLATFORMS for the control plane; the default comes back afterwards."""
    caches = (control_plane.get_settings, control_plane.get_data_plane)

    def set_platforms(value: str) -> None:
        monkeypatch.setenv("AETHER_CLUSTER_PLATFORMS", value)
        for cached in caches:
            cached.cache_clear()

    yield set_platforms
    monkeypatch.undo()
    for cached in caches:
        cached.cache_clear()


def verified_artifact(api: Api, app_name: str, **body: Any) -> str:
    data = random_bytes()
    digest = hashlib.sha256(data).hexdigest()
    reply = api.post(
        "/artifacts",
        {"app_name": app_name, "size_bytes": len(data), **body},
        headers={"x-aether-artifact-digest": digest},
    )
    assert reply.status == 201, reply.body
    assert put(reply.json["upload"], data).status_code == 200
    deliver_pending_events()
    return digest


def test_the_platform_is_recorded_and_listed(api: Api, app_name: str) -> None:
    arm = verified_artifact(api, app_name, platform=ARM)
    default = verified_artifact(api, app_name)
    assert api.get(f"/artifacts/{arm}").json["platform"] == ARM
    assert api.get(f"/artifacts/{default}").json["platform"] == "linux/amd64"
    listed = {a["digest"]: a["platform"] for a in api.get("/artifacts").json["artifacts"]}
    assert listed[arm] == ARM
    assert listed[default] == "linux/amd64"


@pytest.mark.parametrize("platform", ["linux/386", "windows/amd64", "arm64", "", 64])
def test_an_unknown_platform_is_refused(api: Api, app_name: str, platform: object) -> None:
    reply = api.post(
        "/artifacts",
        {"app_name": app_name, "size_bytes": 10, "platform": platform},
        headers={"x-aether-artifact-digest": "a" * 64},
    )
    assert reply.status == 400
    assert reply.json == {
        "code": "bad_request",
        "message": "platform must be one of linux/amd64, linux/arm64",
    }


def test_the_same_digest_cannot_change_platform(api: Api, app_name: str) -> None:
    body = {"app_name": app_name, "size_bytes": 10}
    headers = {"x-aether-artifact-digest": "b" * 64}
    assert api.post("/artifacts", body, headers=headers).status == 201
    again = api.post("/artifacts", {**body, "platform": ARM}, headers=headers)
    assert again.status == 409
    assert again.json["message"] == f"platform {ARM} differs from the linux/amd64 first declared"


def test_an_artifact_for_a_platform_the_cluster_lacks_is_not_deployed(
    api: Api, app_name: str
) -> None:
    digest = verified_artifact(api, app_name, platform=ARM)
    reply = api.post("/deployments", {"app_name": app_name, "artifact_digest": digest})
    assert reply.status == 409
    assert reply.json == {
        "code": "unsupported_platform",
        "message": f"artifact {digest[:12]}… targets {ARM}; this cluster runs linux/amd64",
    }
    assert api.get(f"/apps/{app_name}").json["latest_deployment"] is None


def test_a_cluster_with_arm_nodes_runs_the_artifact_on_them(
    api: Api, app_name: str, cluster_runs: Callable[[str], None], kube_simulator: Any
) -> None:
    import kubernetes

    from chalicelib.kube import api_client

    cluster_runs(f"linux/amd64,{ARM}")
    digest = verified_artifact(api, app_name, platform=ARM)
    reply = api.post("/deployments", {"app_name": app_name, "artifact_digest": digest})
    assert reply.status == 201, reply.body
    assert reply.json["platform"] == ARM
    with api_client(str(kube_simulator.kubeconfig)) as client:
        workload = kubernetes.client.AppsV1Api(client).read_namespaced_deployment(
            app_name, APPS_NAMESPACE
        )
    assert workload.spec.template.spec.node_selector == {
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "arm64",
    }


def test_a_rollback_to_a_platform_the_cluster_no_longer_runs_is_refused(
    api: Api, app_name: str, cluster_runs: Callable[[str], None]
) -> None:
    cluster_runs(f"linux/amd64,{ARM}")
    digest = verified_artifact(api, app_name, platform=ARM)
    earlier = api.post("/deployments", {"app_name": app_name, "artifact_digest": digest})
    assert earlier.status == 201, earlier.body
    cluster_runs("linux/amd64")  # the arm64 nodes are gone
    reply = api.post(f"/apps/{app_name}/rollback", {"to": earlier.json["deployment_id"]})
    assert reply.status == 409
    assert reply.json["code"] == "unsupported_platform"
    assert f"targets {ARM}; this cluster runs linux/amd64" in reply.json["message"]
