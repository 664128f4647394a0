"""Subscriptions through the API: created with a secret shown once, listed without it,
owned like their app, and every refused input answered with the envelope, nothing stored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.records import GLOBAL_SCOPE, Hook
from tests.conftest import Api, _reset_caches
from tests.hooks.conftest import add_hook


def stored(scope: str) -> int:
    return int(Hook.by_scope.count(scope))


@pytest.fixture
def developer(api: Api, unique_name: str) -> Api:
    issued = api.post("/tokens", {"subject": f"dev-{unique_name}", "role": "developer"})
    assert issued.status == 201, issued.body
    return api.as_(issued.json["token"])


@pytest.fixture
def production_settings(control_plane: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The control plane as production runs it: no loopback targets."""
    monkeypatch.setenv("AETHER_HOOKS_ALLOW_LOOPBACK", "false")
    _reset_caches(control_plane)
    yield
    monkeypatch.undo()
    _reset_caches(control_plane)


def test_a_subscription_shows_its_secret_once_and_stores_it_sealed(api: Api, app_name: str) -> None:
    created = add_hook(
        api, "https://hooks.example.com/aether", app_name, events=["artifact.verified"]
    )
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert created["app_name"] == app_name
    assert created["events"] == ["artifact.verified"]
    hook_id = created["hook_id"]
    listed = api.get(f"/hooks?app_name={app_name}")
    assert listed.status == 200
    assert [h["hook_id"] for h in listed.json["hooks"]] == [hook_id]
    shown = api.get(f"/hooks/{hook_id}")
    for reply in (listed, shown, api.get("/hooks")):
        assert secret.encode() not in reply.body
        assert b'"secret"' not in reply.body
    assert secret not in Hook.get(hook_id).secret_sealed


def test_without_events_a_subscription_gets_every_one(api: Api, app_name: str) -> None:
    created = add_hook(api, "https://hooks.example.com/all", app_name)
    assert created["events"] is None


def test_remove_ends_a_subscription(api: Api, app_name: str) -> None:
    hook_id = add_hook(api, "https://hooks.example.com/x", app_name)["hook_id"]
    assert api.delete(f"/hooks/{hook_id}").status == 200
    gone = api.get(f"/hooks/{hook_id}")
    assert (gone.status, gone.json["code"]) == (404, "not_found")
    again = api.delete(f"/hooks/{hook_id}")
    assert (again.status, again.json["code"]) == (404, "not_found")
    assert stored(app_name) == 0


def test_an_admin_subscribes_to_every_app(api: Api) -> None:
    created = add_hook(api, "https://hooks.example.com/fleet", None)
    try:
        assert created["app_name"] is None
        assert created["hook_id"] in [h["hook_id"] for h in api.get("/hooks").json["hooks"]]
    finally:
        api.delete(f"/hooks/{created['hook_id']}")


def test_a_developer_acts_on_its_own_apps_hooks_only(
    api: Api, app_name: str, developer: Api, unique_name: str
) -> None:
    before = stored(GLOBAL_SCOPE)
    refused = developer.post("/hooks", {"url": "https://hooks.example.com/all"})
    assert (refused.status, refused.json["code"]) == (403, "forbidden")
    assert stored(GLOBAL_SCOPE) == before

    theirs = add_hook(api, "https://hooks.example.com/admin", app_name)["hook_id"]
    for reply in (
        developer.get(f"/hooks/{theirs}"),
        developer.delete(f"/hooks/{theirs}"),
        developer.get(f"/hooks/{theirs}/deliveries"),
        developer.get(f"/hooks?app_name={app_name}"),
        developer.post("/hooks", {"url": "https://hooks.example.com/y", "app_name": app_name}),
    ):
        assert (reply.status, reply.json["code"]) == (404, "not_found"), reply.body
    assert api.get(f"/hooks/{theirs}").status == 200

    own = f"{unique_name[:50]}-own"
    assert developer.post("/apps", {"name": own}).status == 201
    mine = add_hook(developer, "https://hooks.example.com/mine", own)["hook_id"]
    assert [h["hook_id"] for h in developer.get("/hooks").json["hooks"]] == [mine]
    assert developer.delete(f"/hooks/{mine}").status == 200


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"url": "not a url"}, "url is not a hook target"),
        ({"url": "ftp://files.example.com/x"}, "url is not a hook target"),
        ({"url": "http://hooks.example.com/plain"}, "must be https"),
        ({"url": "https://user:pw@hooks.example.com/"}, "credentials"),
        ({"url": "https://hooks.example.com:99999/"}, "invalid port"),
        ({"url": "https://10.1.2.3/x"}, "private"),
        ({"url": "https://192.168.0.10/x"}, "private"),
        ({"url": "https://169.254.169.254/latest"}, "private"),
        ({"url": "https://[fd00::1]/x"}, "private"),
        ({"url": "https://[::ffff:10.0.0.1]/x"}, "private"),
        ({"url": "https://" + "a" * 2050 + ".example.com/"}, "longer than"),
        ({"url": 42}, "url must be a non-empty string"),
        ({}, "url is required"),
        ({"url": "https://hooks.example.com/", "events": ["artifact.exploded"]}, "unknown event"),
        ({"url": "https://hooks.example.com/", "events": []}, "non-empty list"),
        ({"url": "https://hooks.example.com/", "events": "artifact.verified"}, "non-empty list"),
        ({"url": "https://hooks.example.com/", "app_name": "Not An App"}, "app_name"),
    ],
)
def test_bad_input_is_refused_with_the_envelope_and_nothing_stored(
    api: Api, app_name: str, body: dict[str, Any], says: str
) -> None:
    reply = api.post("/hooks", {"app_name": app_name, **body})
    assert reply.status == 400, reply.body
    assert reply.json["code"] == "bad_request"
    assert says in reply.json["message"]
    assert stored(app_name) == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://localhost/hook",
        "http://localhost:9000/hook",
    ],
)
def test_loopback_targets_are_refused_in_production_settings(
    api: Api, app_name: str, production_settings: None, url: str
) -> None:
    reply = api.post("/hooks", {"url": url, "app_name": app_name})
    assert (reply.status, reply.json["code"]) == (400, "bad_request"), reply.body
    assert reply.json["message"].startswith("url is not a hook target")
    assert stored(app_name) == 0


def test_loopback_targets_are_allowed_where_the_stage_allows_them(api: Api, app_name: str) -> None:
    created = add_hook(api, "http://127.0.0.1:9/hook", app_name)
    assert created["url"] == "http://127.0.0.1:9/hook"


def test_an_unknown_hook_id_is_not_found_and_a_malformed_one_refused(api: Api) -> None:
    missing = api.get("/hooks/00000000-0000-4000-8000-000000000000")
    assert (missing.status, missing.json["code"]) == (404, "not_found")
    malformed = api.get("/hooks/nope")
    assert (malformed.status, malformed.json["code"]) == (400, "bad_request")


def test_subscriptions_per_app_are_bounded(api: Api, app_name: str) -> None:
    from chalicelib.contract import MAX_HOOKS_PER_SCOPE

    for index in range(MAX_HOOKS_PER_SCOPE):
        add_hook(api, f"https://hooks.example.com/{index}", app_name)
    refused = api.post("/hooks", {"url": "https://hooks.example.com/more", "app_name": app_name})
    assert (refused.status, refused.json["code"]) == (409, "conflict")
    assert stored(app_name) == MAX_HOOKS_PER_SCOPE
