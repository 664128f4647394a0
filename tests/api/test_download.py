"""The fetcher's route: a pull token scoped to one app gets a short-lived presigned GET."""

from urllib.parse import parse_qs, urlparse

import pytest
import requests

from chalicelib import auth, pull_tokens
from chalicelib.contract import Role
from tests.api.test_auth import issue
from tests.conftest import Api
from tests.uploads import random_bytes, request_upload, upload
from tests.verification.delivery import deliver_pending_events


def puller_secret(app_name: str) -> str:
    return auth.issue_token(f"puller:{app_name}", Role.PULLER, app_scope=app_name).secret


@pytest.fixture
def stored(api: Api, unique_name: str) -> tuple[str, str, bytes]:
    api.post("/apps", {"name": unique_name})
    data = random_bytes(3000)
    digest = upload(api, unique_name, data)
    deliver_pending_events()
    return unique_name, digest, data


def test_pull_token_is_redirected_to_a_presigned_get(
    api: Api, stored: tuple[str, str, bytes]
) -> None:
    app_name, digest, data = stored
    puller = api.as_(puller_secret(app_name))
    reply = puller.get(f"/artifacts/{digest}/download")
    assert reply.status == 307
    location = reply.headers["Location"]
    assert int(parse_qs(urlparse(location).query)["X-Amz-Expires"][0]) <= 900
    assert requests.get(location, timeout=10).content == data


def test_a_pull_token_for_another_app_finds_nothing(
    api: Api, stored: tuple[str, str, bytes], unique_name: str
) -> None:
    _, digest, _ = stored
    other = unique_name[:50] + "-o"
    api.post("/apps", {"name": other})
    reply = api.as_(puller_secret(other)).get(f"/artifacts/{digest}/download")
    assert reply.status == 404
    assert reply.json["code"] == "not_found"


def test_a_pull_token_can_do_nothing_else(api: Api, stored: tuple[str, str, bytes]) -> None:
    app_name, digest, _ = stored
    puller = api.as_(puller_secret(app_name))
    assert puller.get(f"/apps/{app_name}").status == 403
    assert puller.get(f"/artifacts/{digest}").status == 404
    assert puller.post("/apps", {"name": app_name + "-p"}).status == 403
    assert (
        puller.post("/deployments", {"app_name": app_name, "artifact_digest": digest}).status == 403
    )


def test_retired_pull_tokens_stop_working(api: Api, stored: tuple[str, str, bytes]) -> None:
    app_name, digest, _ = stored
    written: list[str] = []
    old = pull_tokens.replace(app_name, written.append)
    new = pull_tokens.replace(app_name, written.append)
    assert written == [old.secret, new.secret]
    assert api.as_(old.secret).get(f"/artifacts/{digest}/download").status == 401
    assert api.as_(new.secret).get(f"/artifacts/{digest}/download").status == 307


def test_owner_may_download_but_a_stranger_may_not(
    api: Api, stored: tuple[str, str, bytes]
) -> None:
    app_name, digest, _ = stored
    assert api.get(f"/artifacts/{digest}/download").status == 307
    stranger = api.as_(issue(api, app_name + "-stranger"))
    assert stranger.get(f"/artifacts/{digest}/download").status == 404


def test_an_unverified_artifact_cannot_be_downloaded(api: Api, unique_name: str) -> None:
    api.post("/apps", {"name": unique_name})
    ticket = request_upload(api, unique_name, random_bytes()).json
    reply = api.get(f"/artifacts/{ticket['digest']}/download")
    assert reply.status == 409
    assert reply.json["code"] == "artifact_not_verified"


def test_download_needs_a_token(api: Api) -> None:
    assert api.as_(None).get(f"/artifacts/{'a' * 64}/download").status == 401
