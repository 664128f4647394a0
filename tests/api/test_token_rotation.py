"""POST /tokens/{token_id}/rotate: a replacement with the old token's subject, role and place,
a fresh lifetime, the old one revoked in the same transaction."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from chalicelib.contract import DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS
from tests.conftest import Api


def expiry(body: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(body["expires_at"]).replace("Z", "+00:00"))


def issued(api: Api, subject: str, **extra: object) -> dict[str, Any]:
    reply = api.post("/tokens", {"subject": subject, **extra})
    assert reply.status == 201, reply.body
    return dict(reply.json)


def rotate(api: Api, token_id: str, body: Any = None) -> Any:
    return api.post(f"/tokens/{token_id}/rotate", body)


def test_a_stored_token_lives_thirty_days_unless_asked(api: Api, unique_name: str) -> None:
    from chalicelib.records import utcnow

    assert DEFAULT_TOKEN_DAYS == 30
    made = issued(api, unique_name)
    assert abs(expiry(made) - (utcnow() + timedelta(days=30))) < timedelta(minutes=5)


def test_a_developer_rotates_its_own_token(api: Api, unique_name: str) -> None:
    from chalicelib.records import utcnow

    old = issued(api, unique_name, expires_in_days=2)
    developer = api.as_(old["token"])
    reply = rotate(developer, old["token_id"])
    assert reply.status == 201, reply.body
    new = reply.json
    assert (new["subject"], new["role"], new["replaces"]) == (
        unique_name,
        "developer",
        old["token_id"],
    )
    assert new["token_id"] != old["token_id"] and new["token"].startswith("aet_")
    assert abs(expiry(new) - (utcnow() + timedelta(days=DEFAULT_TOKEN_DAYS))) < timedelta(minutes=5)
    refused = developer.get("/whoami")
    assert (refused.status, refused.json["code"]) == (401, "unauthorized")
    assert api.as_(new["token"]).get("/whoami").json["token_id"] == new["token_id"]
    listed = {t["token_id"]: t["revoked"] for t in api.get("/tokens").json["tokens"]}
    assert (listed[old["token_id"]], listed[new["token_id"]]) == (True, False)


def test_an_admin_rotates_anyones_token_keeping_its_role(api: Api, unique_name: str) -> None:
    old = issued(api, unique_name + "-ci", role="admin")
    reply = rotate(api, old["token_id"], {"expires_in_days": 7})
    assert reply.status == 201, reply.body
    assert (reply.json["subject"], reply.json["role"]) == (unique_name + "-ci", "admin")
    assert expiry(reply.json) - expiry(old) < timedelta(days=-22)
    assert api.as_(old["token"]).get("/whoami").status == 401


def test_another_owners_token_is_not_found(api: Api, unique_name: str) -> None:
    other = issued(api, unique_name + "-other")
    developer = api.as_(issued(api, unique_name)["token"])
    reply = rotate(developer, other["token_id"])
    assert (reply.status, reply.json["code"]) == (404, "not_found")
    assert reply.json["message"] == f"token {other['token_id']} not found"
    assert api.as_(other["token"]).get("/whoami").status == 200


def test_an_unknown_token_is_not_found(api: Api) -> None:
    assert rotate(api, "0123456789abcdef").json["code"] == "not_found"
    assert rotate(api, "env-1").json["code"] == "not_found"


def test_a_revoked_token_is_not_rotated(api: Api, unique_name: str) -> None:
    old = issued(api, unique_name)
    assert api.delete(f"/tokens/{old['token_id']}").status == 200
    reply = rotate(api, old["token_id"])
    assert (reply.status, reply.json["code"]) == (409, "conflict")
    assert reply.json["message"] == f"token {old['token_id']} was revoked: issue a new one instead"


def test_an_expired_token_is_not_rotated(api: Api, unique_name: str) -> None:
    from chalicelib.auth import issue_token
    from chalicelib.contract import Role
    from chalicelib.records import utcnow

    old = issue_token(unique_name, Role.DEVELOPER, expires_at=utcnow() - timedelta(seconds=1))
    reply = rotate(api, old.record.token_id)
    assert (reply.status, reply.json["code"]) == (409, "conflict")
    assert reply.json["message"].startswith(f"token {old.record.token_id} expired at ")


def test_a_token_is_rotated_once(api: Api, unique_name: str) -> None:
    old = issued(api, unique_name)
    assert rotate(api, old["token_id"]).status == 201
    again = rotate(api, old["token_id"])
    assert (again.status, again.json["code"]) == (409, "conflict")


def test_a_pull_token_is_the_platforms_to_rotate(api: Api, unique_name: str) -> None:
    from chalicelib.auth import issue_token
    from chalicelib.contract import Role

    pull = issue_token(f"pull:{unique_name}", Role.PULLER, app_scope=unique_name)
    reply = rotate(api, pull.record.token_id)
    assert (reply.status, reply.json["code"]) == (400, "bad_request")
    assert api.as_(pull.secret).post(f"/tokens/{pull.record.token_id}/rotate").status == 403


@pytest.mark.parametrize(
    "body",
    [{"expires_in_days": 0}, {"expires_in_days": MAX_TOKEN_DAYS + 1}, {"expires_in_days": "7"}],
)
def test_the_lifetime_asked_is_validated(api: Api, unique_name: str, body: object) -> None:
    old = issued(api, unique_name)
    reply = rotate(api, old["token_id"], body)
    assert (reply.status, reply.json["code"]) == (400, "bad_request")
    assert api.as_(old["token"]).get("/whoami").status == 200


def test_the_replacement_takes_the_old_tokens_place(api: Api, unique_name: str) -> None:
    """Issued by the same token, capped by its lifetime and revoked with it; what the old one
    issued goes with the old one, except the token that asked."""
    parent = issued(api, unique_name, expires_in_days=3)
    as_parent = api.as_(parent["token"])
    old = as_parent.post("/tokens", {"expires_in_days": 1}).json
    child = api.as_(old["token"]).post("/tokens", {}).json
    caller = api.as_(old["token"]).post("/tokens", {}).json
    reply = rotate(api.as_(caller["token"]), old["token_id"], {"expires_in_days": MAX_TOKEN_DAYS})
    assert reply.status == 201, reply.body
    new = reply.json
    assert new["issued_by"] == parent["token_id"]
    assert expiry(new) == expiry(parent)  # the fresh lifetime, capped as at issuance
    assert api.as_(child["token"]).get("/whoami").status == 401
    assert api.as_(caller["token"]).get("/whoami").status == 200
    assert api.delete(f"/tokens/{parent['token_id']}").status == 200
    assert api.as_(new["token"]).get("/whoami").status == 401


def test_no_replacement_survives_an_issuer_revoked_meanwhile(api: Api, unique_name: str) -> None:
    """The issuer is revoked and its sweep has not reached the old token yet: the transaction's
    check on the issuer refuses, and nothing is issued."""
    from chalicelib.records import ApiToken

    parent = issued(api, unique_name)
    old = api.as_(parent["token"]).post("/tokens", {}).json
    ApiToken(parent["token_id"]).update(actions=[ApiToken.revoked.set(True)])
    reply = rotate(api, old["token_id"])
    assert (reply.status, reply.json["code"]) == (409, "conflict")
    assert "meanwhile" in reply.json["message"]
    siblings = list(ApiToken.scan(ApiToken.parent_token_id == parent["token_id"]))
    assert [token.token_id for token in siblings] == [old["token_id"]]
    assert api.as_(old["token"]).get("/whoami").status == 200  # the sweep's to revoke


def test_the_rotation_is_in_the_api_document(api: Api) -> None:
    operation = api.get("/openapi.json").json["paths"]["/tokens/{token_id}/rotate"]["post"]
    assert set(operation["responses"]) >= {"201", "400", "401", "403", "404", "409"}
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["expires_in_days"]["default"] == DEFAULT_TOKEN_DAYS
