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
    assert bob.get(f"/apps/{unique_name}").json["code"] == "forbidden"
    assert bob.get(f"/apps/{unique_name}/deployments").status == 403
    key = SigningKey.generate().verify_key.encode().hex()
    assert bob.post(f"/apps/{unique_name}/public-keys", {"public_key_hex": key}).status == 403
    assert unique_name not in [a["name"] for a in bob.get("/apps").json["apps"]]
    assert unique_name in [a["name"] for a in alice.get("/apps").json["apps"]]
    assert api.get(f"/apps/{unique_name}").status == 200  # admins see everything


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
