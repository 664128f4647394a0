import json
import uuid

import pytest
from nacl.signing import SigningKey

from tests.api.test_auth import issue
from tests.conftest import Api


def test_register_show_and_list_an_app(api: Api, unique_name: str) -> None:
    created = api.post("/apps", {"name": unique_name})
    assert created.status == 201
    assert created.json["name"] == unique_name
    assert created.json["owner"] == "admin"
    assert created.json["require_signature"] is False
    assert api.get(f"/apps/{unique_name}").json["latest_deployment"] is None
    names = [a["name"] for a in api.get("/apps").json["apps"]]
    assert unique_name in names


def test_registering_a_taken_name_conflicts(api: Api, unique_name: str) -> None:
    assert api.post("/apps", {"name": unique_name}).status == 201
    again = api.post("/apps", {"name": unique_name})
    assert again.status == 409
    assert again.json == {"code": "conflict", "message": f"application name {unique_name} exists"}


@pytest.mark.parametrize(
    "name",
    ["UPPER", "-leading", "trailing-", "under_score", "a" * 64, "", "dots.in.name", 42, "9lives"],
)
def test_app_names_must_be_dns_labels(api: Api, name: object) -> None:
    reply = api.post("/apps", {"name": name})
    assert reply.status == 400
    assert reply.json["code"] == "bad_request"


def test_missing_name_is_a_bad_request(api: Api) -> None:
    reply = api.post("/apps", {})
    assert reply.json == {"code": "bad_request", "message": "missing field: name"}


def test_unknown_app_is_not_found(api: Api, unique_name: str) -> None:
    reply = api.get(f"/apps/{unique_name}")
    assert reply.status == 404
    assert reply.json["code"] == "not_found"


def test_developers_act_only_on_their_own_apps(api: Api, unique_name: str) -> None:
    alice = api.as_(issue(api, unique_name + "-alice"))
    bob = api.as_(issue(api, unique_name + "-bob"))
    assert alice.post("/apps", {"name": unique_name}).status == 201
    assert bob.get(f"/apps/{unique_name}").json["code"] == "not_found"
    assert unique_name not in [a["name"] for a in bob.get("/apps").json["apps"]]
    assert unique_name in [a["name"] for a in alice.get("/apps").json["apps"]]
    assert api.get(f"/apps/{unique_name}").status == 200  # admins see everything


def test_another_owners_app_answers_as_a_missing_one(api: Api, unique_name: str) -> None:
    """No route tells a stranger that an app exists: its answer is the one for no app."""
    alice = api.as_(issue(api, unique_name + "-alice"))
    bob = api.as_(issue(api, unique_name + "-bob"))
    theirs, missing = unique_name, unique_name[:50] + "-missing"
    assert alice.post("/apps", {"name": theirs}).status == 201
    key_hex = SigningKey.generate().verify_key.encode().hex()
    key_id = alice.post(f"/apps/{theirs}/public-keys", {"public_key_hex": key_hex}).json["key_id"]
    digest = "c" * 64
    calls: list[tuple[str, str, object, dict[str, str]]] = [
        ("GET", "/apps/{app}", None, {}),
        ("GET", "/apps/{app}/deployments", None, {}),
        ("GET", "/apps/{app}/public-keys", None, {}),
        ("POST", "/apps/{app}/public-keys", {"public_key_hex": key_hex}, {}),
        ("DELETE", "/apps/{app}/public-keys/" + key_id, None, {}),
        ("POST", "/apps/{app}/rollback", {}, {}),
        ("POST", "/apps/{app}/rollback", {"version": 1}, {}),
        ("GET", "/apps/{app}/releases", None, {}),
        ("GET", "/apps/{app}/config", None, {}),
        ("GET", "/apps/{app}/config/GREETING", None, {}),
        ("PATCH", "/apps/{app}/config", {"set": {"GREETING": "x"}}, {}),
        ("POST", "/apps/{app}/scale", {"replicas": 2}, {}),
        ("POST", "/apps/{app}/restart", None, {}),
        ("GET", "/apps/{app}/logs", None, {}),
        ("GET", "/artifacts?app_name={app}", None, {}),
        ("POST", "/deployments", {"app_name": "{app}", "artifact_digest": digest}, {}),
        (
            "POST",
            "/artifacts",
            {"app_name": "{app}", "size_bytes": 10},
            {"x-aether-artifact-digest": digest},
        ),
    ]
    for method, path, body, headers in calls:
        replies = []
        for name in (theirs, missing):
            sent = None if body is None else json.loads(json.dumps(body).replace("{app}", name))
            reply = bob.call(method, path.replace("{app}", name), body=sent, headers=headers)
            replies.append((reply.status, json.dumps(reply.json).replace(name, "{app}")))
        assert replies[0] == replies[1], (method, path)
        assert replies[0][0] == 404, (method, path, replies[0])


def test_another_owners_deployment_answers_as_a_missing_one(api: Api, unique_name: str) -> None:
    from chalicelib.records import Deployment

    bob = api.as_(issue(api, unique_name + "-bob"))
    api.post("/apps", {"name": unique_name})
    deployment = Deployment(
        str(uuid.uuid4()),
        app_name=unique_name,
        artifact_digest="d" * 64,
        runtime="node24",
        start_command="npm start",
        config_key="k",
        created_by="admin",
        status="failed",
    )
    deployment.save()
    missing = str(uuid.uuid4())
    theirs = bob.get(f"/deployments/{deployment.deployment_id}")
    absent = bob.get(f"/deployments/{missing}")
    assert theirs.status == absent.status == 404
    assert theirs.json["message"].replace(deployment.deployment_id, "ID") == absent.json[
        "message"
    ].replace(missing, "ID")
    assert unique_name not in theirs.body.decode()


def test_public_keys_are_added_listed_and_deactivated(api: Api, unique_name: str) -> None:
    api.post("/apps", {"name": unique_name})
    key_hex = SigningKey.generate().verify_key.encode().hex()
    added = api.post(f"/apps/{unique_name}/public-keys", {"public_key_hex": key_hex.upper()})
    assert added.status == 201
    assert added.json["public_key_hex"] == key_hex
    assert added.json["active"] is True
    key_id = added.json["key_id"]
    assert [k["key_id"] for k in api.get(f"/apps/{unique_name}/public-keys").json["keys"]] == [
        key_id
    ]
    removed = api.delete(f"/apps/{unique_name}/public-keys/{key_id}")
    assert removed.status == 200
    assert removed.json["active"] is False
    assert api.get(f"/apps/{unique_name}/public-keys").json["keys"][0]["active"] is False


@pytest.mark.parametrize("key", ["00" * 31, "zz" * 32, 1234, None])
def test_malformed_public_keys_are_refused(api: Api, unique_name: str, key: object) -> None:
    api.post("/apps", {"name": unique_name})
    reply = api.post(f"/apps/{unique_name}/public-keys", {"public_key_hex": key})
    assert reply.status == 400
    assert reply.json["code"] == "bad_request"


def test_deactivating_an_unknown_key_is_not_found(api: Api, unique_name: str) -> None:
    api.post("/apps", {"name": unique_name})
    assert api.delete(f"/apps/{unique_name}/public-keys/nope").status == 404
