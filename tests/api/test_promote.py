"""Promotion: another app's verified artifact runs with this app's own config, granted, never
copied; against moto's DynamoDB, S3 and KMS and the simulated cluster, through the app."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from tests.api.test_auth import issue
from tests.api.test_layers import publish
from tests.api.test_platforms import ARM, cluster_runs, verified_artifact
from tests.api.test_releases import deployed, patched, releases_of, settled, verified_digest
from tests.conftest import APPS_NAMESPACE, Api
from tests.uploads import random_bytes, request_upload

pytestmark = pytest.mark.usefixtures("healthy_cluster")

__all__ = ["cluster_runs"]  # the fixture, used by name below

PROD_SECRET = "prod-only-value-93c1"


@pytest.fixture
def staging(api: Api, unique_name: str) -> str:
    name = f"{unique_name[:50]}-stg"
    assert api.post("/apps", {"name": name}).status == 201
    return name


@pytest.fixture
def prod(api: Api, unique_name: str) -> str:
    name = f"{unique_name[:50]}-prd"
    assert api.post("/apps", {"name": name}).status == 201
    return name


def promote(api: Api, target: str, body: dict[str, Any]) -> Any:
    return api.post(f"/apps/{target}/promote", body)


def promoted(api: Api, target: str, source: str, **body: Any) -> dict[str, Any]:
    reply = promote(api, target, {"from": source, **body})
    assert reply.status in (200, 201), reply.body
    done = settled(api, reply.json)
    assert done["status"] == "succeeded", done
    return done


def pull_token(kube_simulator: Any, app_name: str) -> str:
    import kubernetes

    from chalicelib.kube import api_client

    with api_client(str(kube_simulator.kubeconfig)) as client:
        secret = kubernetes.client.CoreV1Api(client).read_namespaced_secret(
            f"{app_name}-pull", APPS_NAMESPACE
        )
    return base64.b64decode(secret.data["token"]).decode()


def overwrite(control_plane: Any, api: Api, app_name: str, digest: str) -> None:
    """Other bytes written over the app's object around the platform: its record is rejected
    the next time anyone asks (no event needed)."""
    shown = api.get(f"/artifacts/{digest}?app_name={app_name}").json
    s3 = boto3.client("s3")
    s3.put_object(
        Bucket=control_plane.get_settings().bucket, Key=shown["key"], Body=random_bytes(1024)
    )
    assert api.head(f"/artifacts/{digest}?app_name={app_name}").status == 404


def test_stagings_digest_runs_in_prod_with_prods_config(api: Api, staging: str, prod: str) -> None:
    digest = verified_digest(api, staging)
    deployed(api, staging, digest, env={"GREETING": "staging"}, start_command="node staging.js")
    patched(api, staging, {"set": {"ONLY_IN_STAGING": "1"}})
    deployed(api, prod, verified_digest(api, prod), replicas=2, start_command="node prod.js")
    patched(api, prod, {"set": {"GREETING": PROD_SECRET}})

    release = promoted(api, prod, staging)

    assert release["artifact_digest"] == digest
    assert release["description"] == f"promote from {staging} v2"
    assert (release["version"], release["replicas"]) == (3, 2)
    assert release["start_command"] == "node prod.js"
    assert release["env_names"] == ["GREETING"]
    assert api.get(f"/apps/{prod}/config/GREETING").json["value"] == PROD_SECRET
    assert all(PROD_SECRET not in str(r) for r in releases_of(api, prod))
    # Granted, not copied: the object is staging's, and prod's record says where it came from.
    shown = api.get(f"/artifacts/{digest}?app_name={prod}").json
    assert (shown["granted_from"], shown["status"]) == (staging, "verified")
    assert shown["key"].startswith(f"artifacts/{staging}/")
    # The same promotion again is the release that runs.
    again = promote(api, prod, {"from": staging})
    assert (again.status, again.json["deployment_id"]) == (200, release["deployment_id"])


def test_a_first_promotion_gives_the_target_defaults(api: Api, staging: str, prod: str) -> None:
    deployed(api, staging, verified_digest(api, staging), env={"GREETING": "staging"})
    release = promoted(api, prod, staging, version="v1")
    assert (release["version"], release["description"]) == (1, f"promote from {staging} v1")
    assert (release["env_names"], release["replicas"]) == ([], 1)


def test_a_promoted_layered_artifact_is_fetched_with_the_targets_pull_token(
    api: Api, staging: str, prod: str, unique_name: str, kube_simulator: Any
) -> None:
    deps, own = random_bytes(3000), random_bytes(200)
    digest = publish(api, staging, ("deps", deps), ("app", own))
    deployed(api, staging, digest)
    promoted(api, prod, staging)

    puller = api.as_(pull_token(kube_simulator, prod))
    for each in (digest, hashlib.sha256(deps).hexdigest(), hashlib.sha256(own).hexdigest()):
        assert api.head(f"/artifacts/{each}?app_name={prod}").status == 200
        reply = puller.get(f"/artifacts/{each}/download")
        assert reply.status == 307, reply.body
        assert f"/artifacts/{staging}/{each}/" in reply.headers["Location"]
    # An app nothing was promoted to holds none of it.
    other = f"{unique_name[:50]}-oth"
    assert api.post("/apps", {"name": other}).status == 201
    assert api.head(f"/artifacts/{digest}?app_name={other}").status == 404


def test_a_rejected_digest_is_not_promoted_and_its_rejection_reaches_a_grant(
    api: Api, staging: str, prod: str, control_plane: Any
) -> None:
    digest = verified_digest(api, staging)
    deployed(api, staging, digest)
    promoted(api, prod, staging)
    overwrite(control_plane, api, staging, digest)

    refused = promote(api, prod, {"from": staging})
    assert (refused.status, refused.json["code"]) == (409, "artifact_not_verified")
    assert "rejected: digest_mismatch" in refused.json["message"]
    # What prod was granted is staging's record: it no longer runs anywhere.
    assert api.head(f"/artifacts/{digest}?app_name={prod}").status == 404
    again = api.post("/deployments", {"app_name": prod, "artifact_digest": digest})
    assert (again.status, again.json["code"]) == (409, "artifact_not_verified")
    assert api.get(f"/artifacts/{digest}?app_name={prod}").json["status"] == "rejected"


def test_a_pending_digest_is_not_promoted(
    api: Api, staging: str, prod: str, control_plane: Any
) -> None:
    data = random_bytes()
    digest = verified_digest(api, staging)
    deployed(api, staging, digest)
    overwrite(control_plane, api, staging, digest)
    # A new upload request starts the rejected artifact over as pending; nothing is uploaded.
    shown = api.get(f"/artifacts/{digest}?app_name={staging}").json
    assert request_upload(api, staging, data, digest=digest, size=shown["size_bytes"]).status == 201
    assert api.get(f"/artifacts/{digest}?app_name={staging}").json["status"] == "pending"

    refused = promote(api, prod, {"from": staging})
    assert (refused.status, refused.json["code"]) == (409, "artifact_not_verified")
    assert "pending" in refused.json["message"]
    assert releases_of(api, prod) == []


def test_a_digest_for_a_platform_the_cluster_no_longer_runs_is_not_promoted(
    api: Api, staging: str, prod: str, cluster_runs: Callable[[str], None]
) -> None:
    cluster_runs(f"linux/amd64,{ARM}")
    digest = verified_artifact(api, staging, platform=ARM)
    assert api.post("/deployments", {"app_name": staging, "artifact_digest": digest}).status == 201
    cluster_runs("linux/amd64")
    refused = promote(api, prod, {"from": staging, "version": 1})
    assert (refused.status, refused.json["code"]) == (409, "unsupported_platform")
    assert api.get(f"/artifacts/{digest}?app_name={prod}").status == 404  # nothing granted


def test_an_unsigned_digest_is_not_promoted_to_an_app_that_requires_signatures(
    api: Api, staging: str, unique_name: str
) -> None:
    signed_only = f"{unique_name[:50]}-sig"
    assert api.post("/apps", {"name": signed_only, "require_signature": True}).status == 201
    deployed(api, staging, verified_digest(api, staging))
    refused = promote(api, signed_only, {"from": staging})
    assert (refused.status, refused.json["code"]) == (409, "artifact_not_verified")
    assert "requires signed artifacts" in refused.json["message"]


def test_a_source_without_a_release_that_succeeded_is_a_conflict(
    api: Api, staging: str, prod: str
) -> None:
    refused = promote(api, prod, {"from": staging})
    assert (refused.status, refused.json["code"]) == (409, "conflict")
    missing = promote(api, prod, {"from": staging, "version": 7})
    assert (missing.status, missing.json["code"]) == (404, "not_found")


@pytest.mark.parametrize(
    "body",
    [{}, {"from": "Not_An_App"}, {"from": 3}, {"from": "x", "version": "seven"}],
    ids=repr,
)
def test_a_bad_promotion_is_a_bad_request(api: Api, prod: str, body: dict[str, Any]) -> None:
    reply = promote(api, prod, body)
    assert (reply.status, reply.json["code"]) == (400, "bad_request"), reply.body


def test_an_app_is_not_promoted_to_itself(api: Api, staging: str) -> None:
    deployed(api, staging, verified_digest(api, staging))
    reply = promote(api, staging, {"from": staging})
    assert (reply.status, reply.json["code"]) == (400, "bad_request")


def test_unknown_apps_are_not_found(api: Api, staging: str, unique_name: str) -> None:
    deployed(api, staging, verified_digest(api, staging))
    for target, source in ((f"{unique_name[:50]}-none", staging), (staging, f"{unique_name}-x")):
        reply = promote(api, target, {"from": source})
        assert (reply.status, reply.json["code"]) == (404, "not_found"), (target, source)


def test_the_caller_must_own_both_apps_and_admins_own_every_app(api: Api, unique_name: str) -> None:
    alice = api.as_(issue(api, unique_name + "-alice"))
    bob = api.as_(issue(api, unique_name + "-bob"))
    alices, bobs = f"{unique_name[:50]}-a", f"{unique_name[:50]}-b"
    assert alice.post("/apps", {"name": alices}).status == 201
    assert bob.post("/apps", {"name": bobs}).status == 201
    deployed(alice, alices, verified_digest(alice, alices))
    deployed(bob, bobs, verified_digest(bob, bobs))
    for caller, target, source in ((alice, bobs, alices), (bob, bobs, alices)):
        reply = promote(caller, target, {"from": source})
        assert (reply.status, reply.json["code"]) == (404, "not_found"), (target, source)
    assert len(releases_of(api, bobs)) == 1
    assert promoted(api, bobs, alices)["description"] == f"promote from {alices} v1"
