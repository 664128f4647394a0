"""Destroying an app: workload, Secrets, pull tokens, records and artifacts gone, name free.

Against moto's DynamoDB, S3 and KMS and the simulated cluster, through the app in-process;
what is gone is read back through the Kubernetes API, the records and the bucket.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from nacl.signing import SigningKey

from tests.api.test_auth import issue
from tests.api.test_releases import deployed, kube, patched, verified_digest
from tests.conftest import APPS_NAMESPACE, Api
from tests.uploads import random_bytes, upload
from tests.verification.delivery import deliver_pending_events

pytestmark = pytest.mark.usefixtures("healthy_cluster")


def objects_of(app_name: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(
        Bucket="aether-test-artifacts", Prefix=f"artifacts/{app_name}/"
    )
    return [item["Key"] for item in listed.get("Contents", [])]


def cluster_objects(kube_simulator: Any, app_name: str) -> dict[str, list[str]]:
    selector = f"app_name={app_name}"

    def read(core: Any, apps: Any) -> dict[str, list[str]]:
        return {
            kind: [item.metadata.name for item in listing.items]
            for kind, listing in (
                (
                    "deployments",
                    apps.list_namespaced_deployment(APPS_NAMESPACE, label_selector=selector),
                ),
                ("services", core.list_namespaced_service(APPS_NAMESPACE, label_selector=selector)),
                ("secrets", core.list_namespaced_secret(APPS_NAMESPACE, label_selector=selector)),
            )
        }

    found: dict[str, list[str]] = kube(kube_simulator, read)
    return found


def records_of(app_name: str) -> dict[str, int]:
    from chalicelib.contract import Role
    from chalicelib.records import ApiToken, Application, Artifact, Deployment, PublicKey

    return {
        "app": Application.count(app_name),
        "releases": Deployment.by_app.count(app_name),
        "artifacts": Artifact.by_app.count(app_name),
        "public_keys": PublicKey.count(app_name),
        "pull_tokens": sum(
            1
            for _ in ApiToken.scan(
                (ApiToken.role == Role.PULLER) & (ApiToken.app_scope == app_name)
            )
        ),
    }


def shared_deploy(api: Api, app_name: str, data: bytes) -> str:
    digest = upload(api, app_name, data)
    deliver_pending_events()
    deployed(api, app_name, digest)
    return digest


def test_destroy_removes_everything_and_frees_the_name(
    api: Api, app_name: str, unique_name: str, kube_simulator: Any
) -> None:
    from chalicelib.records import DeploymentEvent

    shared = random_bytes()
    digest = shared_deploy(api, app_name, shared)
    first_release = api.get(f"/apps/{app_name}/releases").json["releases"][0]["deployment_id"]
    patched(api, app_name, {"set": {"GREETING": "hello"}})  # a config Secret of its own
    deployed(api, app_name, verified_digest(api, app_name))
    key = SigningKey.generate().verify_key.encode().hex()
    assert api.post(f"/apps/{app_name}/public-keys", {"public_key_hex": key}).status == 201
    other = unique_name + "-other"
    assert api.post("/apps", {"name": other}).status == 201
    assert shared_deploy(api, other, shared) == digest  # the same bytes, another app's
    before = cluster_objects(kube_simulator, app_name)
    assert before["deployments"] == [app_name] and before["services"] == [app_name]
    assert len(before["secrets"]) >= 2  # the pull token's and a release's config
    assert records_of(app_name)["pull_tokens"] >= 1 and objects_of(app_name)

    reply = api.delete(f"/apps/{app_name}")
    assert reply.status == 200, reply.body
    assert reply.json["name"] == app_name and reply.json["destroyed"] is True
    assert reply.json["removed"]["releases"] == 3
    assert reply.json["removed"]["artifacts"] == 2
    assert reply.json["removed"]["public_keys"] == 1

    assert cluster_objects(kube_simulator, app_name) == {
        "deployments": [],
        "services": [],
        "secrets": [],
    }
    assert records_of(app_name) == {
        "app": 0,
        "releases": 0,
        "artifacts": 0,
        "public_keys": 0,
        "pull_tokens": 0,
    }
    assert DeploymentEvent.count(first_release) == 0
    assert objects_of(app_name) == []
    assert api.get(f"/apps/{app_name}").status == 404

    # The other app keeps its artifact of the same digest, and deploys it again.
    assert api.head(f"/artifacts/{digest}?app_name={other}").status == 200
    assert objects_of(other)
    again = api.post(f"/apps/{other}/scale", {"replicas": 2})
    assert again.status == 201, again.body

    # The name is free, and the new app starts from nothing.
    assert api.post("/apps", {"name": app_name}).status == 201
    assert api.get(f"/apps/{app_name}/releases").json["releases"] == []
    assert api.head(f"/artifacts/{digest}?app_name={app_name}").status == 404


def test_destroying_twice_is_not_found_the_second_time(api: Api, app_name: str) -> None:
    assert api.delete(f"/apps/{app_name}").status == 200
    again = api.delete(f"/apps/{app_name}")
    assert (again.status, again.json["code"]) == (404, "not_found")


def test_bad_names_and_unknown_apps_are_refused(api: Api, unique_name: str) -> None:
    missing = api.delete(f"/apps/{unique_name}")
    assert (missing.status, missing.json["code"]) == (404, "not_found")
    bad = api.delete("/apps/Not_A_Name")
    assert (bad.status, bad.json["code"]) == (400, "bad_request")


def test_a_developer_destroys_only_its_own_apps(api: Api, unique_name: str) -> None:
    alice = api.as_(issue(api, unique_name + "-alice"))
    bob = api.as_(issue(api, unique_name + "-bob"))
    assert alice.post("/apps", {"name": unique_name}).status == 201
    deployed(alice, unique_name, verified_digest(alice, unique_name))

    refused = bob.delete(f"/apps/{unique_name}")
    assert (refused.status, refused.json["code"]) == (404, "not_found")
    assert records_of(unique_name)["releases"] == 1 and objects_of(unique_name)

    assert alice.delete(f"/apps/{unique_name}").status == 200
    assert bob.post("/apps", {"name": unique_name}).status == 201  # anyone's name now
    assert api.delete(f"/apps/{unique_name}").status == 200  # admins destroy any app


def test_a_teardown_cut_short_is_finished_by_a_retry_or_the_schedule(
    api: Api, app_name: str, kube_simulator: Any, control_plane: Any
) -> None:
    from infra.local.relay import scheduled_event

    digest = verified_digest(api, app_name)
    deployed(api, app_name, digest)
    kube_simulator.set_api_down(True)
    cut_short = api.delete(f"/apps/{app_name}")
    assert (cut_short.status, cut_short.json["code"]) == (503, "service_unavailable")
    kube_simulator.set_api_down(False)

    # Marked: nothing more is added to what the teardown removes, and it shows why.
    for method, path, body in (
        ("GET", f"/apps/{app_name}", None),
        ("POST", "/deployments", {"app_name": app_name, "artifact_digest": digest}),
        ("POST", f"/apps/{app_name}/scale", {"replicas": 2}),
        ("POST", f"/apps/{app_name}/public-keys", {"public_key_hex": "00" * 32}),
    ):
        reply = api.call(method, path, body)
        assert (reply.status, reply.json["code"]) == (409, "conflict"), (method, path)
        assert "being destroyed" in reply.json["message"]
    assert api.post("/apps", {"name": app_name}).status == 409  # not free yet

    control_plane.reconcile_deployments(scheduled_event(), None)
    assert records_of(app_name)["app"] == 0
    assert cluster_objects(kube_simulator, app_name)["deployments"] == []
    assert objects_of(app_name) == []
    assert api.delete(f"/apps/{app_name}").status == 404


def test_a_retry_finishes_a_teardown_cut_short(
    api: Api, app_name: str, kube_simulator: Any
) -> None:
    deployed(api, app_name, verified_digest(api, app_name))
    kube_simulator.set_api_down(True)
    assert api.delete(f"/apps/{app_name}").status == 503
    kube_simulator.set_api_down(False)
    assert api.delete(f"/apps/{app_name}").status == 200
    assert records_of(app_name)["releases"] == 0
    assert cluster_objects(kube_simulator, app_name)["secrets"] == []


def test_an_artifact_promoted_to_another_app_is_handed_over_and_keeps_running(
    api: Api, app_name: str, unique_name: str, kube_simulator: Any
) -> None:
    """The app that uploaded it goes; the app it was promoted to becomes its uploader."""
    import hashlib

    from chalicelib.records import Artifact
    from tests.api.test_layers import publish
    from tests.api.test_promote import promoted, pull_token

    deps, own = random_bytes(3000), random_bytes(200)
    digest = publish(api, app_name, ("deps", deps), ("app", own))
    deployed(api, app_name, digest)
    prod, third = unique_name[:50] + "-prod", unique_name[:50] + "-third"
    for name in (prod, third):
        assert api.post("/apps", {"name": name}).status == 201
        promoted(api, name, app_name)

    assert api.delete(f"/apps/{app_name}").status == 200
    assert objects_of(app_name) == []
    layers = [hashlib.sha256(deps).hexdigest(), hashlib.sha256(own).hexdigest()]
    for each in (digest, *layers):
        heir = Artifact.get(each, prod)
        assert heir.granted_from is None and heir.key.startswith(f"artifacts/{prod}/")
        assert Artifact.get(each, third).granted_from == prod
        assert api.head(f"/artifacts/{each}?app_name={prod}").status == 200
        download = api.as_(pull_token(kube_simulator, third)).get(f"/artifacts/{each}/download")
        assert (
            download.status == 307 and f"/artifacts/{prod}/{each}/" in download.headers["Location"]
        )
    # Both still release it: what runs there is theirs now.
    for name in (prod, third):
        again = api.post(f"/apps/{name}/scale", {"replicas": 2})
        assert again.status == 201, again.body
    # Whoever registers the old name holds none of it.
    assert api.post("/apps", {"name": app_name}).status == 201
    assert api.head(f"/artifacts/{digest}?app_name={app_name}").status == 404
