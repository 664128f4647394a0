"""Runtimes: the Node lines in support today; an end-of-life or unknown one is refused."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from chalicelib import contract
from tests.conftest import Api
from tests.uploads import random_bytes, upload
from tests.verification.delivery import deliver_pending_events


def request_upload(api: Api, app_name: str, **body: object) -> tuple[str, int, dict[str, str]]:
    data = random_bytes(100)
    digest = hashlib.sha256(data).hexdigest()
    reply = api.post(
        "/artifacts",
        {"app_name": app_name, "size_bytes": len(data), **body},
        headers={"x-aether-artifact-digest": digest},
    )
    return digest, reply.status, reply.json


def test_an_artifact_without_a_runtime_gets_the_newest_lts_line(api: Api, app_name: str) -> None:
    digest, status, _ = request_upload(api, app_name)
    assert status == 201
    shown = api.get(f"/artifacts/{digest}").json
    assert shown["runtime"] == contract.default_runtime()


@pytest.mark.parametrize("runtime", contract.supported_runtimes())
def test_every_supported_runtime_is_accepted(api: Api, app_name: str, runtime: str) -> None:
    digest, status, body = request_upload(api, app_name, runtime=runtime)
    assert status == 201, body
    assert api.get(f"/artifacts/{digest}").json["runtime"] == runtime


@pytest.mark.parametrize(
    "line", [line for line in contract.NODE_LINES if dt.date.today() >= line.end_of_life]
)
def test_an_end_of_life_runtime_is_refused_with_its_date(
    api: Api, app_name: str, line: contract.NodeLine
) -> None:
    _, status, body = request_upload(api, app_name, runtime=line.runtime)
    assert status == 400
    assert body["code"] == "bad_request"
    assert f"end of life on {line.end_of_life.isoformat()}" in body["message"]


@pytest.mark.parametrize("runtime", ["node21", "deno2", "", 24, ["node24"]])
def test_an_unknown_runtime_is_refused_with_the_supported_ones(
    api: Api, app_name: str, runtime: object
) -> None:
    _, status, body = request_upload(api, app_name, runtime=runtime)
    assert status == 400
    assert body == {
        "code": "bad_request",
        "message": f"runtime must be one of {', '.join(contract.supported_runtimes())}",
    }


def test_a_deployment_refuses_an_end_of_life_runtime(api: Api, app_name: str) -> None:
    digest = upload(api, app_name, random_bytes())
    deliver_pending_events()
    reply = api.post(
        "/deployments", {"app_name": app_name, "artifact_digest": digest, "runtime": "node20"}
    )
    assert reply.status == 400
    assert "node20 reached its end of life on 2026-04-30" in reply.json["message"]
