"""Access tokens from an OpenID issuer: the whole matrix, against a real JWKS over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.settings import OidcSettings
from tests.conftest import Api
from tests.issuer import AUDIENCE, CLI_CLIENT_ID, Issuer, Key, serve_issuer


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with serve_issuer() as served:
        yield served


def configure(control_plane: Any, monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    control_plane.get_settings.cache_clear()
    control_plane.get_verifier.cache_clear()


@pytest.fixture
def oidc_api(
    api: Api, control_plane: Any, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Api]:
    """The API trusting ``issuer``, with a fresh key cache (as a freshly started API has)."""
    issuer.published = [issuer.published[0]]
    configure(
        control_plane,
        monkeypatch,
        AETHER_OIDC_ISSUER=issuer.url,
        AETHER_OIDC_AUDIENCE=AUDIENCE,
        AETHER_OIDC_CLI_CLIENT_ID=CLI_CLIENT_ID,
    )
    yield api.as_(None)
    monkeypatch.undo()
    control_plane.get_settings.cache_clear()
    control_plane.get_verifier.cache_clear()


def whoami(api: Api, token: str) -> Any:
    return api.as_(token).get("/whoami")


def test_a_good_token_names_its_subject_role_issuer_and_expiry(
    oidc_api: Api, issuer: Issuer
) -> None:
    expiry = int(time.time()) + 300
    reply = whoami(oidc_api, issuer.token("alice", ["developer"], exp=expiry))
    assert reply.status == 200, reply.body
    assert reply.json["subject"] == "oidc:alice"
    assert reply.json["role"] == "developer"
    assert reply.json["issuer"] == issuer.url
    assert reply.json["expires_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry))


def test_an_admin_group_makes_an_admin(oidc_api: Api, issuer: Issuer) -> None:
    reply = whoami(oidc_api, issuer.token("root", ["developer", "admin"]))
    assert reply.json["role"] == "admin"


# Each row: what the token claims, what the API answers, and the reason it gives.
REFUSED = [
    ("expired", {"exp": -120}, "the token has expired"),
    ("not yet valid", {"nbf": 120}, "the token is not valid yet"),
    ("wrong audience", {"aud": "someone-else"}, "the token is meant for another audience"),
    ("no audience", {"aud": None}, "a valid bearer token is required"),
    ("wrong issuer", {"iss": "https://evil.example.com"}, "the token comes from another issuer"),
    ("no expiry", {"exp": None}, "a valid bearer token is required"),
    ("no subject", {"sub": None}, "a valid bearer token is required"),
]


@pytest.mark.parametrize(("case", "claims", "message"), REFUSED, ids=[r[0] for r in REFUSED])
def test_a_token_outside_its_claims_is_unauthorized(
    oidc_api: Api, issuer: Issuer, case: str, claims: dict[str, Any], message: str
) -> None:
    now = int(time.time())
    shifted = {
        name: (now + value if name in {"exp", "nbf"} and value is not None else value)
        for name, value in claims.items()
    }
    sub = shifted.pop("sub", "mallory")
    reply = whoami(oidc_api, issuer.token(sub, ["admin"], **shifted))
    assert reply.status == 401, case
    assert reply.json == {"code": "unauthorized", "message": message}


def test_within_the_clock_skew_a_token_is_still_good(oidc_api: Api, issuer: Issuer) -> None:
    now = int(time.time())
    reply = whoami(oidc_api, issuer.token("skewed", nbf=now + 5, exp=now - 5))
    assert reply.status == 200, reply.body


def test_a_token_signed_by_a_key_the_issuer_never_published_is_unauthorized(
    oidc_api: Api, issuer: Issuer
) -> None:
    reply = whoami(oidc_api, issuer.token("mallory", ["admin"], key=Key.rsa()))
    assert reply.status == 401
    assert reply.json["message"] == "the token is signed by a key the issuer does not publish"


def test_a_published_kid_over_another_keys_signature_is_unauthorized(
    oidc_api: Api, issuer: Issuer
) -> None:
    impostor = Key.rsa()
    impostor.kid = issuer.published[0].kid
    reply = whoami(oidc_api, issuer.token("mallory", ["admin"], key=impostor))
    assert reply.status == 401
    assert reply.json["message"] == "a valid bearer token is required"


def test_alg_none_is_unauthorized(oidc_api: Api, issuer: Issuer) -> None:
    reply = whoami(oidc_api, issuer.forged("none", b""))
    assert reply.status == 401
    assert reply.json["message"] == "the token is not signed with an algorithm the issuer uses"


def test_hs256_keyed_with_the_issuers_public_key_is_unauthorized(
    oidc_api: Api, issuer: Issuer
) -> None:
    reply = whoami(oidc_api, issuer.forged("HS256", issuer.published[0].public_pem()))
    assert reply.status == 401
    assert reply.json["message"] == "the token is not signed with an algorithm the issuer uses"


def test_an_algorithm_other_than_the_keys_own_is_unauthorized(
    oidc_api: Api, issuer: Issuer
) -> None:
    rsa_key = issuer.published[0]
    as_ps256 = Key(rsa_key.kid, rsa_key.private, "PS256")
    reply = whoami(oidc_api, issuer.token("mallory", ["admin"], key=as_ps256))
    assert reply.status == 401
    assert reply.json["message"] == "the token's algorithm is not the one its key signs with"


@pytest.mark.parametrize("groups", [[], ["viewer", "ops"], "viewer"], ids=["none", "others", "str"])
def test_a_user_in_neither_group_is_forbidden(oidc_api: Api, issuer: Issuer, groups: Any) -> None:
    reply = whoami(oidc_api, issuer.token("visitor", groups=groups))
    assert reply.status == 403
    assert reply.json["code"] == "forbidden"


@pytest.mark.parametrize(
    "token", ["a.b.c", "e30.e30.", "not-json.at.all", "...", "eyJhbGciOiJSUzI1NiJ9.e30.sig"]
)
def test_a_malformed_jwt_is_unauthorized(oidc_api: Api, token: str) -> None:
    reply = whoami(oidc_api, token)
    assert reply.status == 401
    assert reply.json["code"] == "unauthorized"


def test_rotated_keys_are_honoured_without_a_restart(oidc_api: Api, issuer: Issuer) -> None:
    old = issuer.published[0]
    assert whoami(oidc_api, issuer.token("alice", key=old)).status == 200
    fetched = issuer.jwks_requests
    new = Key.ec()
    issuer.published = [new, old]  # the provider rotates: a new signing key, the old kept
    reply = whoami(oidc_api, issuer.token("alice", key=new))
    assert reply.status == 200, reply.body
    assert issuer.jwks_requests == fetched + 1
    assert whoami(oidc_api, issuer.token("alice", key=old)).status == 200
    assert issuer.jwks_requests == fetched + 1  # both known now: no more fetches


def test_unknown_key_ids_refetch_the_keys_once_per_period(oidc_api: Api, issuer: Issuer) -> None:
    assert whoami(oidc_api, issuer.token()).status == 200
    fetched = issuer.jwks_requests
    for _ in range(5):
        assert whoami(oidc_api, issuer.token(key=Key.rsa())).status == 401
    assert issuer.jwks_requests == fetched + 1


def test_stored_and_environment_tokens_keep_working(api: Api, oidc_api: Api) -> None:
    assert api.get("/whoami").json["role"] == "admin"
    reply = api.post("/tokens", {"subject": "ci@example.com", "role": "developer"})
    stored = reply.json["token"]
    who = whoami(oidc_api, stored).json
    assert who["subject"] == "ci@example.com"
    assert who["issuer"] is None


def test_a_developer_sees_only_its_own_apps(
    api: Api, oidc_api: Api, issuer: Issuer, unique_name: str
) -> None:
    alice = oidc_api.as_(issuer.token("alice-" + unique_name))
    bob = oidc_api.as_(issuer.token("bob-" + unique_name))
    assert alice.post("/apps", {"name": unique_name}).status == 201
    assert alice.get(f"/apps/{unique_name}").json["owner"] == f"oidc:alice-{unique_name}"
    assert [a["name"] for a in bob.get("/apps").json["apps"]] == []
    assert bob.get(f"/apps/{unique_name}").status == 404
    admin = oidc_api.as_(issuer.token("root", ["admin"]))
    assert unique_name in [a["name"] for a in admin.get("/apps").json["apps"]]


def test_an_unreachable_issuer_is_service_unavailable(
    api: Api, control_plane: Any, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infra.local.processes import free_port

    configure(
        control_plane,
        monkeypatch,
        AETHER_OIDC_ISSUER=f"http://127.0.0.1:{free_port()}",
        AETHER_OIDC_AUDIENCE=AUDIENCE,
        AETHER_OIDC_CLI_CLIENT_ID=CLI_CLIENT_ID,
    )
    try:
        reply = whoami(api, issuer.token())
        assert reply.status == 503
        assert reply.json["code"] == "service_unavailable"
    finally:
        monkeypatch.undo()
        control_plane.get_settings.cache_clear()
        control_plane.get_verifier.cache_clear()


def test_auth_config_tells_the_cli_how_to_sign_in(oidc_api: Api, issuer: Issuer) -> None:
    reply = oidc_api.get("/auth/config")
    assert reply.status == 200
    assert reply.json == {
        "oidc": {
            "issuer": issuer.url,
            "client_id": CLI_CLIENT_ID,
            "scopes": ["openid", "profile", "offline_access"],
            "audience": AUDIENCE,
            "redirect_uri": None,
        }
    }


def test_auth_config_without_an_issuer_says_stored_tokens_only(api: Api) -> None:
    reply = api.as_(None).get("/auth/config")
    assert reply.status == 200
    assert reply.json == {"oidc": None}


def test_auth_config_is_in_the_openapi_document(api: Api) -> None:
    operation = api.get("/openapi.json").json["paths"]["/auth/config"]["get"]
    assert operation["security"] == []
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["oidc"]


def test_cognito_access_tokens_name_their_client_instead_of_an_audience(
    api: Api, control_plane: Any, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(
        control_plane,
        monkeypatch,
        AETHER_OIDC_ISSUER=issuer.url,
        AETHER_OIDC_AUDIENCE=CLI_CLIENT_ID,
        AETHER_OIDC_AUDIENCE_CLAIM="client_id",
        AETHER_OIDC_GROUPS_CLAIM="cognito:groups",
        AETHER_OIDC_CLI_CLIENT_ID=CLI_CLIENT_ID,
    )
    try:
        good = issuer.token("carol", groups=[], aud=None, **{"cognito:groups": ["admin"]})
        assert whoami(api, good).json["role"] == "admin"
        other = issuer.token("carol", aud=None, client_id="another-client")
        assert whoami(api, other).status == 401
    finally:
        monkeypatch.undo()
        control_plane.get_settings.cache_clear()
        control_plane.get_verifier.cache_clear()


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"AETHER_OIDC_ISSUER": "http://idp.example.com"}, "must be an https URL"),
        ({"AETHER_OIDC_ISSUER": "ftp://127.0.0.1"}, "must be an https URL"),
        ({"AETHER_OIDC_ISSUER": "https://idp.example.com"}, "needs AETHER_OIDC_AUDIENCE"),
        (
            {
                "AETHER_OIDC_ISSUER": "https://idp.example.com",
                "AETHER_OIDC_AUDIENCE": "a",
                "AETHER_OIDC_CLI_CLIENT_ID": "c",
                "AETHER_OIDC_JWKS_URL": "http://keys.example.com/jwks",
            },
            "must be an https URL",
        ),
        (
            {
                "AETHER_OIDC_ISSUER": "https://idp.example.com",
                "AETHER_OIDC_AUDIENCE": "a",
                "AETHER_OIDC_CLI_CLIENT_ID": "c",
                "AETHER_OIDC_REDIRECT_URI": "https://app.example.com/callback",
            },
            "AETHER_OIDC_REDIRECT_URI must be",
        ),
    ],
)
def test_a_misconfigured_issuer_is_refused_at_start(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        OidcSettings.from_env(env)


def test_no_issuer_means_no_oidc() -> None:
    assert OidcSettings.from_env({}) is None
