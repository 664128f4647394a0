"""What clients may send: JSON numbers, nulls, empty query values and headers, odd times."""

from __future__ import annotations

import hashlib
import http.client
from urllib.parse import quote, urlsplit

import pytest

from infra.local.processes import Service
from tests.conftest import ADMIN_TOKEN, Api
from tests.uploads import random_bytes, upload
from tests.verification.delivery import deliver_pending_events


def ask_upload(api: Api, app_name: str, headers: dict[str, str] | None = None, **body: object):
    digest = hashlib.sha256(random_bytes(64)).hexdigest()
    return api.post(
        "/artifacts",
        {"app_name": app_name, "size_bytes": 64, **body},
        headers={"x-aether-artifact-digest": digest, **(headers or {})},
    )


def test_a_whole_number_written_with_a_fraction_is_an_integer(api: Api, app_name: str) -> None:
    # JSON Schema counts 64.0 as an integer, and so do JSON encoders that only have floats.
    assert ask_upload(api, app_name, size_bytes=64.0).status == 201
    token = api.post("/tokens", {"subject": app_name, "expires_in_days": 30.0})
    assert token.status == 201, token.body


@pytest.mark.parametrize("size", [64.5, "64", 1e300, True])
def test_a_size_that_is_not_a_whole_number_in_range_is_refused(
    api: Api, app_name: str, size: object
) -> None:
    reply = ask_upload(api, app_name, size_bytes=size)
    assert reply.status in (400, 413)
    assert reply.json["code"] in ("bad_request", "payload_too_large")


@pytest.mark.parametrize("field", ["runtime", "platform"])
def test_an_explicit_null_is_refused_rather_than_taken_for_the_default(
    api: Api, app_name: str, field: str
) -> None:
    reply = ask_upload(api, app_name, **{field: None})
    assert reply.status == 400
    assert reply.json["message"] == f"{field} must not be null (leave it out for the default)"


@pytest.mark.parametrize(
    "body",
    [{"start_command": None}, {"env": None}, {"replicas": None}, {"artifact_digest": {}}],
)
def test_a_deployment_field_of_the_wrong_kind_is_refused(
    api: Api, app_name: str, body: dict[str, object]
) -> None:
    digest = upload(api, app_name, random_bytes())
    deliver_pending_events()
    reply = api.post("/deployments", {"app_name": app_name, "artifact_digest": digest, **body})
    assert reply.status == 400
    assert reply.json["code"] in ("bad_request", "invalid_digest")


@pytest.mark.parametrize("kind", [{}, [], ["manifest"], 1, "MANIFEST"], ids=repr)
def test_an_artifact_kind_that_is_no_kind_is_a_400(api: Api, app_name: str, kind: object) -> None:
    reply = ask_upload(api, app_name, kind=kind)
    assert reply.status == 400, reply.body
    assert reply.json["message"].startswith("kind must be one of")
    assert api.get(f"/artifacts?app_name={app_name}").json["artifacts"] == []


def test_an_empty_signature_header_is_a_bad_signature(api: Api, app_name: str) -> None:
    reply = ask_upload(api, app_name, headers={"x-aether-signature": ""})
    assert reply.status == 400
    assert reply.json["code"] == "bad_signature"


@pytest.mark.parametrize(
    "query", ["limit=", "cursor=", "limit=%D9%A3", "limit=2.5"], ids=lambda q: q or "empty"
)
def test_an_empty_or_malformed_paging_value_is_refused(api: Api, app_name: str, query: str) -> None:
    reply = api.get(f"/apps/{app_name}/deployments?{query}")
    assert reply.status == 400
    assert reply.json["code"] == "bad_request"


@pytest.mark.parametrize(
    "since",
    [
        "2026-12-01T10:00:00.123456789Z",  # nanoseconds, as the kubelet writes them
        "2026-12-01t10:00:00z",  # RFC 3339 allows lower case
        "2016-12-31T23:59:60Z",  # a leap second
        "2026-12-01T10:00:00+05:30",
    ],
)
def test_logs_take_any_rfc_3339_time(api: Api, app_name: str, since: str) -> None:
    from urllib.parse import quote

    reply = api.get(f"/apps/{app_name}/logs?since={quote(since)}")
    assert reply.status == 200, reply.body


@pytest.mark.parametrize(
    "query",
    ["since=", "since=0001-01-01T00:00:00%2B23:59", "deployment=", "deployment=a,b", "tail=x"],
)
def test_logs_refuse_an_empty_or_impossible_query(api: Api, app_name: str, query: str) -> None:
    reply = api.get(f"/apps/{app_name}/logs?{query}")
    assert reply.status == 400, reply.body
    assert reply.json["code"] == "bad_request"


def test_a_head_error_has_no_body_so_the_connection_stays_usable(local_api: Service) -> None:
    url = urlsplit(local_api.url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        connection.request("HEAD", "/artifacts/not-a-digest", headers=auth)
        refused = connection.getresponse()
        assert (refused.status, refused.read()) == (400, b"")
        connection.request("GET", "/healthz")
        after = connection.getresponse()
        assert (after.status, after.read()) == (200, b'{"status":"ok"}')
    finally:
        connection.close()


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_json_nested_too_deeply_is_a_bad_request(api: Api, opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    depth = 5_000  # well inside the body limit, far past the parser's recursion limit
    reply = api.post("/apps", raw=(opening * depth + "1" + closing * depth).encode())
    assert reply.json == {"code": "bad_request", "message": "request body is nested too deeply"}
    assert reply.status == 400


def made_up_cursors(app_name: str, other_app: str) -> list[str]:
    """Cursors this API never handed out: garbage, forged keys, another app's page."""
    import base64
    import json

    def b64(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()

    forged_key = {
        "deployment_id": {"S": "x"},
        "app_name": {"S": other_app},
        "created_at": {"S": "not a time"},
    }
    return [
        "garbage",
        b64({"a": 1}),
        b64({}),
        b64([]),
        b64(forged_key),
        b64(forged_key) + "." + base64.urlsafe_b64encode(b"\0" * 32).decode(),
        "." * 3,
        "é.é",
    ]


def test_only_a_cursor_this_api_returned_for_this_app_is_read(api: Api, app_name: str) -> None:
    from chalicelib.records import Deployment

    other = app_name[:50] + "-other"
    assert api.post("/apps", {"name": other}).status == 201
    for name in (app_name, other):
        for index in range(3):
            Deployment(
                f"{name}-{index}",
                app_name=name,
                artifact_digest="e" * 64,
                runtime="node24",
                start_command="npm start",
                config_key=str(index),
                created_by="admin",
                status="failed",
            ).save()
    page = api.get(f"/apps/{app_name}/deployments?limit=2").json
    theirs = api.get(f"/apps/{other}/deployments?limit=2").json["next_cursor"]
    for cursor in [*made_up_cursors(app_name, other), theirs, page["next_cursor"][:-2]]:
        reply = api.get(f"/apps/{app_name}/deployments?limit=2&cursor={quote(cursor)}")
        assert reply.status == 400, (cursor, reply.body)
        assert reply.json == {
            "code": "bad_request",
            "message": "cursor is not one this API returned",
        }
    rest = api.get(f"/apps/{app_name}/deployments?limit=2&cursor={quote(page['next_cursor'])}")
    assert [d["app_name"] for d in rest.json["deployments"]] == [app_name]


def test_no_head_answer_carries_a_body_so_one_connection_stays_in_sync(
    local_api: Service,
) -> None:
    """Every kind of HEAD answer on one kept-alive connection, each followed by a GET."""
    url = urlsplit(local_api.url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    absent = "0" * 64
    heads = [
        ("/healthz", {}, None),  # a GET-only route whose GET has a body
        (f"/artifacts/{absent}", auth, 404),
        (f"/artifacts/{absent}", {}, 401),  # no token
        (f"/artifacts/{absent}", {"Authorization": "Bearer nope"}, 401),
        (f"/artifacts/{absent}?app_name=Not_An_App", auth, 400),
        ("/no/such/route", auth, None),  # answered by the dev server's router, not a view
        ("/apps", auth, None),  # a route with no HEAD
    ]
    try:
        for path, headers, status in heads:
            connection.request("HEAD", path, headers=headers)
            answer = connection.getresponse()
            assert answer.read() == b"", path
            if status is not None:
                assert answer.status == status, path
            connection.request("GET", "/healthz")
            after = connection.getresponse()
            assert (after.status, after.read()) == (200, b'{"status":"ok"}'), path
    finally:
        connection.close()


@pytest.mark.parametrize(
    "body",
    [
        {"artifact_digest": 5},
        {"artifact_digest": ["a" * 64]},
        {"artifact_digest": None},
        {"artifact_digest": True},
        {"start_command": 7},
        {"start_command": ["npm", "start"]},
        {"env": {"A": None}},
        {"env": {"A": 1}},
        {"env": []},
        {"replicas": "2"},
        {"app_name": 5},
    ],
    ids=lambda b: f"{next(iter(b))}={next(iter(b.values()))!r}",
)
def test_a_deployment_field_of_any_other_type_is_a_400(
    api: Api, app_name: str, body: dict[str, object]
) -> None:
    digest = upload(api, app_name, random_bytes())
    deliver_pending_events()
    before = api.get(f"/apps/{app_name}/deployments").json["deployments"]
    reply = api.post("/deployments", {"app_name": app_name, "artifact_digest": digest, **body})
    assert reply.status == 400, reply.body
    assert reply.json["code"] in ("bad_request", "invalid_digest", "missing_digest")
    assert api.get(f"/apps/{app_name}/deployments").json["deployments"] == before


@pytest.mark.parametrize("to", [5, None, ["x"], {"deployment_id": "x"}, True])
def test_a_rollback_target_of_another_type_is_a_400(api: Api, app_name: str, to: object) -> None:
    reply = api.post(f"/apps/{app_name}/rollback", {"to": to})
    assert reply.status == 400, reply.body
    assert reply.json["code"] == "bad_request"


@pytest.mark.parametrize(
    "value",
    ["a,b", "x!=y", "app_name=other", "a b", "é", "a" * 64, "(x)", "in"],
)
def test_a_deployment_filter_that_is_no_id_never_reaches_the_label_selector(
    api: Api, app_name: str, value: str
) -> None:
    reply = api.get(f"/apps/{app_name}/logs?deployment={quote(value)}")
    assert reply.status == 400, reply.body
    assert reply.json["code"] == "bad_request"
