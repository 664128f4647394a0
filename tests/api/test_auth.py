import pytest

from tests.conftest import Api

PROTECTED = [
    ("GET", "/whoami"),
    ("GET", "/apps"),
    ("POST", "/apps"),
    ("GET", "/apps/some-app"),
    ("GET", "/apps/some-app/deployments"),
    ("GET", "/apps/some-app/public-keys"),
    ("POST", "/artifacts"),
    ("GET", "/artifacts"),
    ("GET", "/artifacts/" + "a" * 64),
    ("POST", "/deployments"),
    ("GET", "/deployments/d-1"),
    ("GET", "/tokens"),
    ("POST", "/tokens"),
    ("POST", "/tokens/0123456789abcdef/rotate"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_route_but_health_needs_a_token(api: Api, method: str, path: str) -> None:
    reply = api.as_(None).call(method, path, body={})
    assert reply.status == 401
    assert reply.json == {"code": "unauthorized", "message": reply.json["message"]}
    assert reply.headers.get("WWW-Authenticate", "").startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    ["Bearer wrong-token", "Basic dXNlcjpwYXNz", "Bearer", "bearer aet_missing_secret", ""],
)
def test_a_bad_authorization_header_is_unauthorized(api: Api, header: str) -> None:
    reply = api.get("/whoami", headers={"authorization": header})
    assert reply.status == 401
    assert reply.json["code"] == "unauthorized"


def test_head_without_token_is_unauthorized_without_body(api: Api) -> None:
    reply = api.as_(None).head("/artifacts/" + "b" * 64)
    assert reply.status == 401
    assert reply.body == b""


def issue(api: Api, subject: str, role: str = "developer", **extra: object) -> str:
    reply = api.post("/tokens", {"subject": subject, "role": role, **extra})
    assert reply.status == 201, reply.body
    return str(reply.json["token"])


def test_issued_token_is_shown_once_and_stored_as_sha256(api: Api, unique_name: str) -> None:
    from chalicelib.records import ApiToken

    secret = issue(api, unique_name)
    whoami = api.as_(secret).get("/whoami").json
    assert whoami["subject"] == unique_name
    assert whoami["role"] == "developer"
    record = ApiToken.get(whoami["token_id"])
    assert secret not in str(record.attribute_values)
    import hashlib

    assert record.token_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    listed = api.get("/tokens").json["tokens"]
    assert all("token" not in t and "token_sha256" not in t for t in listed)


def test_a_token_with_the_right_id_but_wrong_secret_is_refused(api: Api, unique_name: str) -> None:
    secret = issue(api, unique_name)
    forged = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    assert api.as_(forged).get("/whoami").status == 401


def test_revoked_token_stops_working(api: Api, unique_name: str) -> None:
    secret = issue(api, unique_name)
    token_id = api.as_(secret).get("/whoami").json["token_id"]
    assert api.delete(f"/tokens/{token_id}").status == 200
    reply = api.as_(secret).get("/whoami")
    assert reply.status == 401
    assert "revoked" in reply.json["message"]


def test_expired_token_stops_working(api: Api, unique_name: str) -> None:
    from datetime import timedelta

    from chalicelib.auth import issue_token
    from chalicelib.records import utcnow

    issued = issue_token(unique_name, "developer", expires_at=utcnow() - timedelta(seconds=1))
    assert api.as_(issued.secret).get("/whoami").status == 401


def test_developer_may_rotate_only_its_own_token(api: Api, unique_name: str) -> None:
    developer = api.as_(issue(api, unique_name))
    rotated = developer.post("/tokens", {})
    assert rotated.status == 201
    assert rotated.json["subject"] == unique_name
    assert developer.post("/tokens", {"subject": "someone-else"}).json["code"] == "forbidden"
    assert developer.post("/tokens", {"role": "admin"}).status == 403
    own_old = developer.get("/whoami").json["token_id"]
    assert developer.delete(f"/tokens/{own_old}").status == 200


def test_a_token_never_outlives_the_token_that_issued_it(api: Api, unique_name: str) -> None:
    from datetime import datetime

    def expiry(reply_json: dict[str, str]) -> datetime:
        return datetime.fromisoformat(reply_json["expires_at"].replace("Z", "+00:00"))

    short = api.post("/tokens", {"subject": unique_name, "expires_in_days": 1}).json
    developer = api.as_(short["token"])
    renewed = developer.post("/tokens", {"expires_in_days": 366})
    assert renewed.status == 201
    assert expiry(renewed.json) == expiry(short)
    assert renewed.json["issued_by"] == short["token_id"]
    short_admin = api.post(
        "/tokens", {"subject": unique_name + "-adm", "role": "admin", "expires_in_days": 1}
    ).json
    minted = api.as_(short_admin["token"]).post(
        "/tokens", {"subject": unique_name + "-ci", "role": "admin", "expires_in_days": 366}
    )
    assert expiry(minted.json) == expiry(short_admin)
    # A token from the environment has no lifetime of its own: what it issues is not capped.
    assert expiry(api.post("/tokens", {"subject": unique_name, "expires_in_days": 366}).json) > (
        expiry(short)
    )


def test_revoking_a_token_revokes_every_token_it_issued(api: Api, unique_name: str) -> None:
    parent = api.post("/tokens", {"subject": unique_name}).json
    child = api.as_(parent["token"]).post("/tokens", {}).json
    grandchild = api.as_(child["token"]).post("/tokens", {}).json
    sibling = api.post("/tokens", {"subject": unique_name}).json
    assert api.delete(f"/tokens/{parent['token_id']}").status == 200
    for token in (parent, child, grandchild):
        reply = api.as_(token["token"]).get("/whoami")
        assert (reply.status, reply.json["code"]) == (401, "unauthorized")
    assert api.as_(sibling["token"]).get("/whoami").status == 200
    listed = {t["token_id"]: t["revoked"] for t in api.get("/tokens").json["tokens"]}
    assert [listed[t["token_id"]] for t in (parent, child, grandchild, sibling)] == [
        True,
        True,
        True,
        False,
    ]


def test_a_token_rotated_by_its_replacement_keeps_the_replacement(
    api: Api, unique_name: str
) -> None:
    old = api.post("/tokens", {"subject": unique_name}).json
    new = api.as_(old["token"]).post("/tokens", {}).json
    assert api.as_(new["token"]).delete(f"/tokens/{old['token_id']}").status == 200
    assert api.as_(old["token"]).get("/whoami").status == 401
    assert api.as_(new["token"]).get("/whoami").json["token_id"] == new["token_id"]


def test_a_token_issued_while_its_parent_is_revoked_does_not_survive(
    api: Api, unique_name: str
) -> None:
    from chalicelib import auth
    from chalicelib.records import ApiToken

    parent = api.post("/tokens", {"subject": unique_name}).json
    # Authenticated just before the revocation lands: the new child must not outlive it.
    principal = auth.authenticate(f"Bearer {parent['token']}", ())
    ApiToken(parent["token_id"]).update(actions=[ApiToken.revoked.set(True)])
    with pytest.raises(auth.Unauthorized):
        auth.issue_for(principal, {})
    children = list(ApiToken.scan(ApiToken.parent_token_id == parent["token_id"]))
    assert [child.revoked for child in children] == [True]


def test_developer_cannot_revoke_another_subjects_token(api: Api, unique_name: str) -> None:
    other = issue(api, unique_name + "-other")
    other_id = api.as_(other).get("/whoami").json["token_id"]
    developer = api.as_(issue(api, unique_name))
    assert developer.delete(f"/tokens/{other_id}").status == 404
    assert api.as_(other).get("/whoami").status == 200


@pytest.mark.parametrize(
    "body",
    [
        {"subject": ""},
        {"subject": 5},
        {"role": "root"},
        {"expires_in_days": 0},
        {"expires_in_days": 10_000},
        {"expires_in_days": "7"},
    ],
)
def test_token_requests_are_validated(api: Api, body: dict[str, object]) -> None:
    reply = api.post("/tokens", {"subject": "someone", **body})
    assert reply.status == 400
    assert reply.json["code"] == "bad_request"


def test_unknown_token_id_cannot_be_revoked(api: Api) -> None:
    assert api.delete("/tokens/nope").json["code"] == "not_found"
