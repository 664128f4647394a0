import pytest

from chalicelib.contract import default_runtime
from tests.conftest import Api
from tests.uploads import random_bytes, upload
from tests.verification.delivery import deliver_pending_events


@pytest.fixture
def verified(api: Api, unique_name: str) -> tuple[str, str]:
    """An app with one verified artifact: (app name, digest)."""
    api.post("/apps", {"name": unique_name})
    digest = upload(api, unique_name, random_bytes())
    deliver_pending_events()
    return unique_name, digest


def deploy(api: Api, app_name: str, digest: str, **extra: object) -> dict[str, object]:
    reply = api.post("/deployments", {"app_name": app_name, "artifact_digest": digest, **extra})
    assert reply.status in (200, 201), reply.body
    return dict(reply.json)


def test_a_deployment_is_recorded_and_applied(api: Api, verified: tuple[str, str]) -> None:
    app_name, digest = verified
    reply = api.post(
        "/deployments",
        {"app_name": app_name, "artifact_digest": digest, "env": {"GREETING": "hi"}},
    )
    assert reply.status == 201
    body = reply.json
    assert body["status"] == "rolling_out"
    assert [e["phase"] for e in body["events"]] == ["rolling_out"]
    assert body["artifact_digest"] == digest
    assert body["start_command"] == "npm start"
    assert body["runtime"] == default_runtime()
    assert body["env_names"] == ["GREETING"]
    assert "hi" not in reply.body.decode()
    shown = api.get(f"/deployments/{body['deployment_id']}").json
    assert shown["deployment_id"] == body["deployment_id"]
    assert isinstance(shown["events"], list)
    latest = api.get(f"/apps/{app_name}").json["latest_deployment"]
    assert latest["deployment_id"] == body["deployment_id"]


def test_the_same_deployment_in_flight_is_not_duplicated(
    api: Api, verified: tuple[str, str]
) -> None:
    app_name, digest = verified
    first = deploy(api, app_name, digest)
    again = api.post("/deployments", {"app_name": app_name, "artifact_digest": digest})
    assert again.status == 200
    assert again.json["deployment_id"] == first["deployment_id"]
    different = deploy(api, app_name, digest, env={"MODE": "other"})
    assert different["deployment_id"] != first["deployment_id"]


def test_a_failed_deployment_frees_its_slot(api: Api, verified: tuple[str, str]) -> None:
    from chalicelib.records import Deployment
    from chalicelib.rollouts import finish

    app_name, digest = verified
    first = deploy(api, app_name, digest)
    finish(Deployment.get(first["deployment_id"]), "failed", "a test says so")
    second = deploy(api, app_name, digest)
    assert second["deployment_id"] != first["deployment_id"]


def test_deploying_exactly_what_runs_rolls_nothing_out(api: Api, verified: tuple[str, str]) -> None:
    from tests.polling import wait_for

    app_name, digest = verified
    first = deploy(api, app_name, digest)
    wait_for(
        lambda: api.get(f"/deployments/{first['deployment_id']}").json["status"] == "succeeded",
        what="the first rollout",
    )
    again = api.post("/deployments", {"app_name": app_name, "artifact_digest": digest})
    assert again.status == 200
    assert again.json["deployment_id"] == first["deployment_id"]
    other = deploy(api, app_name, digest, replicas=2)
    assert other["deployment_id"] != first["deployment_id"]


def test_history_is_newest_first_and_paginated(api: Api, verified: tuple[str, str]) -> None:
    app_name, digest = verified
    ids = [deploy(api, app_name, digest, replicas=n)["deployment_id"] for n in (1, 2, 3)]
    page = api.get(f"/apps/{app_name}/deployments?limit=2").json
    assert [d["deployment_id"] for d in page["deployments"]] == ids[::-1][:2]
    assert page["next_cursor"]
    rest = api.get(f"/apps/{app_name}/deployments?limit=2&cursor={page['next_cursor']}").json
    assert [d["deployment_id"] for d in rest["deployments"]] == ids[:1]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "cursor=%25%25%25"])
def test_history_rejects_bad_paging(api: Api, verified: tuple[str, str], query: str) -> None:
    reply = api.get(f"/apps/{verified[0]}/deployments?{query}")
    assert reply.status == 400
    assert reply.json["code"] == "bad_request"


def test_deploying_an_unknown_artifact_is_not_found(api: Api, verified: tuple[str, str]) -> None:
    reply = api.post("/deployments", {"app_name": verified[0], "artifact_digest": "f" * 64})
    assert reply.status == 404
    assert reply.json["code"] == "not_found"


def test_deploying_an_artifact_never_uploaded_is_not_verified(
    api: Api, verified: tuple[str, str]
) -> None:
    from tests.uploads import request_upload

    app_name, _ = verified
    ticket = request_upload(api, app_name, random_bytes()).json
    reply = api.post("/deployments", {"app_name": app_name, "artifact_digest": ticket["digest"]})
    assert reply.status == 409
    assert reply.json["code"] == "artifact_not_verified"


def test_deploying_another_apps_artifact_is_not_found(api: Api, verified: tuple[str, str]) -> None:
    app_name, digest = verified
    other = app_name[:50] + "-b"
    api.post("/apps", {"name": other})
    reply = api.post("/deployments", {"app_name": other, "artifact_digest": digest})
    assert reply.status == 404


@pytest.mark.parametrize(
    "extra",
    [
        {"replicas": 0},
        {"replicas": 99},
        {"env": {"1BAD": "x"}},
        {"env": {"PORT": "3000"}},
        {"env": {"OK": 5}},
        {"env": ["A=B"]},
        {"env": {"OK": "a\x00b"}},
        {"start_command": ""},
        {"start_command": "node\x00server.js"},
        {"runtime": "node16"},
    ],
)
def test_deployment_requests_are_validated(
    api: Api, verified: tuple[str, str], extra: dict[str, object]
) -> None:
    app_name, digest = verified
    reply = api.post("/deployments", {"app_name": app_name, "artifact_digest": digest, **extra})
    assert reply.status == 400
    assert reply.json["code"] == "bad_request"


def test_missing_fields_are_named(api: Api) -> None:
    reply = api.post("/deployments", {"artifact_digest": "a" * 64})
    assert reply.json == {"code": "bad_request", "message": "missing field: app_name"}


def test_unknown_deployment_is_not_found(api: Api) -> None:
    assert api.get("/deployments/nope").json["code"] == "not_found"
