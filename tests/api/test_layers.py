"""Layered artifacts: a manifest naming content-addressed layers, each verified on its own."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from nacl.signing import SigningKey

from chalicelib import contract, layers, manifests
from tests.conftest import Api
from tests.uploads import put, random_bytes, request_upload, sign, upload
from tests.verification.delivery import deliver_pending_events


def manifest_bytes(app: str | None, *layer_data: tuple[str, bytes]) -> bytes:
    document = {
        "schema": contract.MANIFEST_SCHEMA,
        "app": app,
        "layers": [
            {"role": role, "digest": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for role, data in layer_data
        ],
    }
    return layers.canonical(document)


def publish(api: Api, app: str, *layer_data: tuple[str, bytes], **manifest: Any) -> str:
    """Upload every layer, then the manifest; returns the manifest's digest."""
    for _, data in layer_data:
        upload(api, app, data, kind="layer")
    data = manifest.pop("data", None) or manifest_bytes(app, *layer_data)
    digest = upload(api, app, data, kind="manifest", **manifest)
    deliver_pending_events()
    return digest


def status(api: Api, app: str, digest: str) -> dict[str, Any]:
    return dict(api.get(f"/artifacts/{digest}?app_name={app}").json)


def deploy(api: Api, app: str, digest: str) -> Any:
    return api.post("/deployments", {"app_name": app, "artifact_digest": digest})


def test_a_manifest_and_its_layers_deploy(api: Api, app_name: str) -> None:
    deps, app = random_bytes(5000), random_bytes(300)
    digest = publish(api, app_name, ("deps", deps), ("app", app))
    shown = status(api, app_name, digest)
    assert (shown["kind"], shown["status"]) == ("manifest", "verified")
    assert shown["key"] == f"artifacts/{app_name}/{digest}/artifact.json"
    layer = status(api, app_name, hashlib.sha256(deps).hexdigest())
    assert (layer["kind"], layer["status"], layer["signature"]) == ("layer", "verified", "absent")
    assert (
        api.head(f"/artifacts/{hashlib.sha256(app).hexdigest()}?app_name={app_name}").status == 200
    )
    reply = deploy(api, app_name, digest)
    assert reply.status == 201, reply.body
    from chalicelib.records import Deployment

    assert Deployment.get(reply.json["deployment_id"]).artifact_kind == "manifest"


def test_a_layer_alone_never_deploys(api: Api, app_name: str) -> None:
    digest = upload(api, app_name, random_bytes(), kind="layer")
    deliver_pending_events()
    reply = deploy(api, app_name, digest)
    assert (reply.status, reply.json["code"]) == (409, "artifact_not_verified")
    assert "only runs through the manifest" in reply.json["message"]


def test_a_missing_layer_makes_the_manifest_undeployable(api: Api, app_name: str) -> None:
    deps, app = random_bytes(), random_bytes()
    upload(api, app_name, app, kind="layer")  # the deps layer is never uploaded
    digest = upload(
        api, app_name, manifest_bytes(app_name, ("deps", deps), ("app", app)), kind="manifest"
    )
    deliver_pending_events()
    assert status(api, app_name, digest)["status"] == "verified"  # the manifest itself is fine
    assert api.head(f"/artifacts/{digest}?app_name={app_name}").status == 404
    reply = deploy(api, app_name, digest)
    assert (reply.status, reply.json["code"]) == (409, "artifact_not_verified")
    assert "deps layer" in reply.json["message"] and "never uploaded" in reply.json["message"]


def test_a_layer_of_another_app_is_not_this_apps(api: Api, app_name: str) -> None:
    other = app_name[:50] + "-b"
    assert api.post("/apps", {"name": other}).status == 201
    deps, app = random_bytes(), random_bytes()
    upload(api, app_name, deps, kind="layer")  # uploaded for the first app only
    upload(api, other, app, kind="layer")
    digest = upload(
        api, other, manifest_bytes(other, ("deps", deps), ("app", app)), kind="manifest"
    )
    deliver_pending_events()
    deps_digest = hashlib.sha256(deps).hexdigest()
    assert api.head(f"/artifacts/{deps_digest}?app_name={other}").status == 404
    reply = deploy(api, other, digest)
    assert (reply.status, reply.json["code"]) == (409, "artifact_not_verified")


def test_a_tampered_layer_is_rejected_and_its_manifest_undeployable(
    api: Api, app_name: str
) -> None:
    deps, app = random_bytes(), random_bytes()
    ticket = request_upload(api, app_name, deps, kind="layer").json
    # moto does not enforce the signed checksum, so other bytes reach the handler.
    headers = {k: v for k, v in ticket["upload"]["headers"].items() if "checksum" not in k}
    assert put({**ticket["upload"], "headers": headers}, random_bytes(len(deps))).ok
    digest = publish(
        api, app_name, ("app", app), data=manifest_bytes(app_name, ("deps", deps), ("app", app))
    )
    deps_record = status(api, app_name, hashlib.sha256(deps).hexdigest())
    assert (deps_record["status"], deps_record["reason"]) == ("rejected", "digest_mismatch")
    reply = deploy(api, app_name, digest)
    assert (reply.status, reply.json["code"]) == (409, "artifact_not_verified")


@pytest.mark.parametrize(
    ("why", "data"),
    [
        ("not json", b"{not json"),
        ("not canonical", b'{"app": null, "layers": [], "schema": "aether.artifact/v2"}'),
        ("another schema", layers.canonical({"schema": "x/v9", "app": None, "layers": []})),
        (
            "no layers",
            layers.canonical({"schema": contract.MANIFEST_SCHEMA, "app": None, "layers": []}),
        ),
        (
            "unknown key",
            layers.canonical(
                {"schema": contract.MANIFEST_SCHEMA, "app": None, "layers": [], "x": 1}
            ),
        ),
        (
            "no app layer",
            layers.canonical(
                {
                    "schema": contract.MANIFEST_SCHEMA,
                    "app": None,
                    "layers": [{"role": "deps", "digest": "a" * 64, "size": 1}],
                }
            ),
        ),
        (
            "bad digest",
            layers.canonical(
                {
                    "schema": contract.MANIFEST_SCHEMA,
                    "app": None,
                    "layers": [{"role": "app", "digest": "A" * 64, "size": 1}],
                }
            ),
        ),
        (
            "duplicate key",
            b'{"app":null,"app":null,"layers":[],"schema":"aether.artifact/v2"}',
        ),
    ],
)
def test_a_malformed_manifest_is_refused(why: str, data: bytes) -> None:
    with pytest.raises(layers.MalformedManifest):
        layers.parse(data)


def test_a_malformed_manifest_upload_is_rejected(api: Api, app_name: str) -> None:
    digest = upload(api, app_name, b'{"schema": "aether.artifact/v2"}', kind="manifest")
    deliver_pending_events()
    shown = status(api, app_name, digest)
    assert (shown["status"], shown["reason"]) == ("rejected", "malformed_manifest")


def test_a_manifest_signed_for_another_app_is_rejected(api: Api, app_name: str) -> None:
    key = SigningKey.generate()
    api.post(f"/apps/{app_name}/public-keys", {"public_key_hex": key.verify_key.encode().hex()})
    app = random_bytes()
    upload(api, app_name, app, kind="layer")
    # A validly signed manifest of another app, replayed against this one.
    data = manifest_bytes("someone-else", ("app", app))
    signature = sign(key, hashlib.sha256(data).hexdigest())
    digest = upload(api, app_name, data, signature=signature, kind="manifest")
    deliver_pending_events()
    shown = status(api, app_name, digest)
    assert (shown["status"], shown["reason"]) == ("rejected", "app_mismatch")


def test_a_signed_manifest_verifies_and_an_unsigned_one_is_refused_when_required(
    api: Api, unique_name: str
) -> None:
    assert api.post("/apps", {"name": unique_name, "require_signature": True}).status == 201
    key = SigningKey.generate()
    api.post(f"/apps/{unique_name}/public-keys", {"public_key_hex": key.verify_key.encode().hex()})
    app = random_bytes()
    upload(api, unique_name, app, kind="layer")  # layers need no signature of their own
    data = manifest_bytes(unique_name, ("app", app))
    digest = upload(
        api,
        unique_name,
        data,
        signature=sign(key, hashlib.sha256(data).hexdigest()),
        kind="manifest",
    )
    deliver_pending_events()
    shown = status(api, unique_name, digest)
    assert (shown["status"], shown["signature"]) == ("verified", "valid")
    assert deploy(api, unique_name, digest).status == 201
    unsigned = manifest_bytes(unique_name, ("app", app), ("deps", random_bytes(10)))
    digest = upload(api, unique_name, unsigned, kind="manifest")
    deliver_pending_events()
    assert status(api, unique_name, digest)["reason"] == "unsigned"


def test_a_digest_keeps_its_first_kind(api: Api, app_name: str) -> None:
    data = random_bytes()
    assert request_upload(api, app_name, data, kind="layer").status == 201
    reply = request_upload(api, app_name, data, kind="archive")
    assert (reply.status, reply.json["code"]) == (409, "conflict")
    assert "is a layer" in reply.json["message"]


def test_an_unknown_kind_is_a_bad_request(api: Api, app_name: str) -> None:
    reply = request_upload(api, app_name, random_bytes(), kind="image")
    assert (reply.status, reply.json["code"]) == (400, "bad_request")


def test_an_oversized_manifest_is_refused(api: Api, app_name: str) -> None:
    reply = request_upload(
        api, app_name, b"{}", size=contract.MAX_MANIFEST_BYTES + 1, kind="manifest"
    )
    assert (reply.status, reply.json["code"]) == (413, "payload_too_large")


def test_the_openapi_document_carries_the_kind(api: Api) -> None:
    document = api.get("/openapi.json").json
    body = document["paths"]["/artifacts"]["post"]["requestBody"]["content"]["application/json"]
    schema = body["schema"]["properties"]["kind"]
    assert schema["enum"] == ["archive", "manifest", "layer"]


def test_only_a_manifests_pods_are_told_their_format() -> None:
    def fetch_env(kind: contract.ArtifactKind) -> dict[str, Any]:
        spec = manifests.WorkloadSpec(
            app_name="shop",
            deployment_id="d1",
            digest="a" * 64,
            node_major=24,
            start_command="npm start",
            env={},
            replicas=1,
            namespace="apps",
            artifact_url="http://api/artifacts/" + "a" * 64 + "/download",
            artifact_kind=kind,
        )
        deployment = manifests.workload_manifests(spec, "token")[1]
        fetch = deployment["spec"]["template"]["spec"]["initContainers"][0]
        return {item["name"]: item.get("value") for item in fetch["env"]}

    assert fetch_env(contract.ArtifactKind.MANIFEST)["AETHER_ARTIFACT_FORMAT"] == "manifest"
    assert "AETHER_ARTIFACT_FORMAT" not in fetch_env(contract.ArtifactKind.ARCHIVE)


def test_the_manifest_is_canonical_json() -> None:
    data = manifest_bytes("shop", ("app", b"x"))
    assert json.loads(data)["app"] == "shop"
    assert layers.parse(data).layers[0].role == "app"
    assert layers.canonical(layers.parse(data).to_json()) == data
