from collections.abc import Iterator
from typing import Any

import pytest

from infra.local.processes import free_port
from tests.conftest import Api


def test_malformed_json_is_a_bad_request(api: Api) -> None:
    reply = api.post("/apps", raw=b"{not json")
    assert reply.status == 400
    assert reply.json["code"] == "bad_request"
    assert "not valid JSON" in reply.json["message"]


def test_a_json_array_body_is_a_bad_request(api: Api) -> None:
    reply = api.post("/apps", raw=b"[1, 2]")
    assert reply.json == {"code": "bad_request", "message": "request body must be a JSON object"}


def test_wrong_content_type_is_refused_with_the_envelope(api: Api) -> None:
    reply = api.post("/apps", raw=b"name=x", headers={"content-type": "text/plain"})
    assert reply.status == 415
    assert reply.json["code"] == "unsupported_media_type"
    assert set(reply.json) == {"code", "message"}


def test_wrong_method_is_refused_with_the_envelope(api: Api) -> None:
    reply = api.call("PUT", "/apps")
    assert reply.status == 405
    assert reply.json["code"] == "method_not_allowed"
    assert "GET" in reply.headers.get("Allow", "")


def test_oversized_body_is_a_bad_request(api: Api) -> None:
    reply = api.post("/apps", {"name": "x", "padding": "y" * 70_000})
    assert reply.status == 400
    assert reply.json["code"] == "bad_request"


@pytest.fixture
def unreachable_aws(control_plane: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the app at a port nothing listens on (another stage's tables), then restore it."""
    from chalicelib.records import configure
    from chalicelib.settings import Settings

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AETHER_TABLE_PREFIX", "aether-unreachable")
    monkeypatch.setenv("AETHER_CONNECT_TIMEOUT_SECONDS", "1")
    caches = (control_plane.get_settings, control_plane.get_store, control_plane.get_data_plane)
    for cached in caches:
        cached.cache_clear()
    configure(Settings.from_env())
    yield
    monkeypatch.undo()
    for cached in caches:
        cached.cache_clear()
    configure(Settings.from_env())


def test_dynamodb_unreachable_is_service_unavailable(api: Api, unreachable_aws: None) -> None:
    for method, path in [("GET", "/apps"), ("POST", "/apps"), ("GET", "/deployments/x")]:
        reply = api.call(method, path, body={"name": "down-app"})
        assert reply.status == 503, (path, reply.body)
        assert reply.json["code"] == "service_unavailable"
    token_reply = api.as_("aet_0123456789abcdef_secret").get("/whoami")
    assert token_reply.status == 503


def test_readyz_is_503_when_dependencies_are_down(api: Api, unreachable_aws: None) -> None:
    reply = api.as_(None).get("/readyz")
    assert reply.status == 503
    assert reply.json["code"] == "service_unavailable"
    assert reply.json["checks"] == {
        "dynamodb": "unavailable",
        "s3": "unavailable",
        "kubernetes": "ok",
    }


def test_an_unexpected_failure_is_an_internal_envelope_without_details(
    api: Api, control_plane: Any
) -> None:
    import boto3

    from chalicelib.records import Application

    name = "corrupted-record"
    dynamodb = boto3.client("dynamodb")
    table = Application.Meta.table_name
    dynamodb.put_item(
        TableName=table,
        Item={"name": {"S": name}, "owner": {"S": "admin"}, "created_at": {"S": "not a time"}},
    )
    try:
        reply = api.get(f"/apps/{name}")
    finally:  # the table is shared by the whole session: every listing would fail
        dynamodb.delete_item(TableName=table, Key={"name": {"S": name}})
    assert reply.status == 500
    assert reply.json == {"code": "internal", "message": "an unexpected error occurred"}


def test_the_same_tables_are_not_moved_to_another_endpoint(control_plane: Any) -> None:
    import dataclasses

    from chalicelib import records
    from chalicelib.settings import Settings

    settings = Settings.from_env()
    elsewhere = dataclasses.replace(settings, dynamodb_endpoint_url="http://127.0.0.1:9")
    with pytest.raises(ValueError, match="AETHER_TABLE_PREFIX"):
        records.configure(elsewhere)
    records.configure(settings)  # where they were: allowed, and nothing changes
