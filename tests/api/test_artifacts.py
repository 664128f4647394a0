import hashlib
from urllib.parse import parse_qs, urlparse

import pytest

from tests.conftest import Api
from tests.uploads import random_bytes, request_upload, upload
from tests.verification.delivery import deliver_pending_events


def test_upload_request_presigns_one_key_length_and_checksum(api: Api, app_name: str) -> None:
    data = random_bytes(1000)
    digest = hashlib.sha256(data).hexdigest()
    reply = request_upload(api, app_name, data)
    assert reply.status == 201
    body = reply.json
    assert body["digest"] == digest
    assert body["key"] == f"artifacts/{app_name}/{digest}/app.tar.gz"
    assert body["duplicate"] is False
    upload_ = body["upload"]
    assert upload_["method"] == "PUT"
    assert urlparse(upload_["url"]).path.endswith(body["key"])
    query = parse_qs(urlparse(upload_["url"]).query)
    assert int(query["X-Amz-Expires"][0]) <= 900
    assert query["X-Amz-SignedHeaders"][0] == "content-length;host;x-amz-checksum-sha256"
    assert upload_["headers"]["Content-Length"] == "1000"
    import base64

    assert base64.b64decode(upload_["headers"]["x-amz-checksum-sha256"]).hex() == digest


def test_head_is_404_until_verified_then_200(api: Api, app_name: str) -> None:
    data = random_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert api.head(f"/artifacts/{digest}").status == 404
    reply = request_upload(api, app_name, data)
    assert api.head(f"/artifacts/{digest}").status == 404  # requested, nothing stored
    upload(api, app_name, data)
    deliver_pending_events()
    head = api.head(f"/artifacts/{digest}")
    assert head.status == 200
    assert head.body == b""
    assert reply.status == 201


def test_a_verified_digest_is_a_duplicate_without_url(api: Api, app_name: str) -> None:
    data = random_bytes()
    upload(api, app_name, data)
    deliver_pending_events()
    again = request_upload(api, app_name, data)
    assert again.status == 201
    assert again.json["duplicate"] is True
    assert again.json["upload"] is None


def test_the_same_bytes_for_another_app_are_its_own_artifact(api: Api, app_name: str) -> None:
    data = random_bytes()
    digest = upload(api, app_name, data)
    deliver_pending_events()
    other = app_name[:50] + "-other"
    api.post("/apps", {"name": other})
    assert api.head(f"/artifacts/{digest}?app_name={other}").status == 404
    ticket = request_upload(api, other, data)
    assert ticket.status == 201
    assert ticket.json["duplicate"] is False
    assert ticket.json["key"] == f"artifacts/{other}/{digest}/app.tar.gz"
    upload(api, other, data)
    assert api.head(f"/artifacts/{digest}?app_name={other}").status == 200
    assert api.get(f"/artifacts/{digest}?app_name={other}").json["app_name"] == other
    assert api.get(f"/artifacts/{digest}?app_name={app_name}").json["app_name"] == app_name


def test_too_large_an_artifact_is_refused(api: Api, app_name: str) -> None:
    reply = request_upload(api, app_name, b"x", size=2 * 1024**3)
    assert reply.status == 413
    assert reply.json["code"] == "payload_too_large"


def test_missing_digest_header(api: Api, app_name: str) -> None:
    reply = api.post("/artifacts", {"app_name": app_name, "size_bytes": 10})
    assert reply.status == 400
    assert reply.json["code"] == "missing_digest"


@pytest.mark.parametrize("digest", ["abc", "g" * 64, "A" * 64, "a" * 65])
def test_malformed_digest(api: Api, app_name: str, digest: str) -> None:
    reply = request_upload(api, app_name, b"data", digest=digest)
    assert reply.status == 400
    assert reply.json["code"] == "invalid_digest"


def test_malformed_digest_in_path(api: Api) -> None:
    reply = api.get("/artifacts/not-a-digest")
    assert reply.status == 400
    assert reply.json["code"] == "invalid_digest"


def test_unknown_digest_is_not_found(api: Api) -> None:
    reply = api.get("/artifacts/" + "c" * 64)
    assert reply.status == 404
    assert reply.json["code"] == "not_found"


def test_malformed_signature_header(api: Api, app_name: str) -> None:
    reply = request_upload(api, app_name, b"data", signature="zz")
    assert reply.status == 400
    assert reply.json["code"] == "bad_signature"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"app_name": None, "size_bytes": 10}, "missing field: app_name"),
        ({"app_name": "Bad_Name", "size_bytes": 10}, "DNS label"),
        ({"size_bytes": 0}, "size_bytes"),
        ({"size_bytes": "ten"}, "size_bytes"),
        ({"size_bytes": True}, "size_bytes"),
        ({"size_bytes": 10, "runtime": "python3"}, "runtime"),
    ],
)
def test_upload_requests_are_validated(
    api: Api, app_name: str, body: dict[str, object], message: str
) -> None:
    reply = api.post(
        "/artifacts",
        {"app_name": app_name, **body},
        headers={"x-aether-artifact-digest": "d" * 64},
    )
    assert reply.status == 400
    assert reply.json["code"] == "bad_request"
    assert message in reply.json["message"]


def test_upload_for_an_unknown_app_is_not_found(api: Api, unique_name: str) -> None:
    assert request_upload(api, unique_name, b"data").json["code"] == "not_found"


def test_artifact_metadata_and_listing(api: Api, app_name: str) -> None:
    first = upload(api, app_name, random_bytes())
    second = upload(api, app_name, random_bytes())
    deliver_pending_events()
    shown = api.get(f"/artifacts/{first}").json
    assert shown["status"] == "verified"
    assert shown["verified"] is True
    assert shown["signature"] == "absent"
    assert shown["reason"] is None
    listed = api.get(f"/artifacts?app_name={app_name}").json["artifacts"]
    assert [a["digest"] for a in listed] == [second, first]
    everything = {a["digest"] for a in api.get("/artifacts?limit=100").json["artifacts"]}
    assert {first, second} <= everything


def test_another_developers_artifact_is_invisible(api: Api, app_name: str) -> None:
    from tests.api.test_auth import issue

    digest = upload(api, app_name, random_bytes())
    stranger = api.as_(issue(api, app_name + "-x"))
    assert stranger.get(f"/artifacts/{digest}").status == 404
    assert stranger.head(f"/artifacts/{digest}").status == 404


def test_a_retry_may_not_change_the_declared_size(api: Api, app_name: str) -> None:
    data = random_bytes(100)
    assert request_upload(api, app_name, data).status == 201
    again = request_upload(api, app_name, data, size=101)
    assert again.status == 409
    assert again.json["code"] == "conflict"
    assert "differs" in again.json["message"]
