"""One-off runs: a Job from the release that serves, polled, listed, read and stopped.

Through the simulated cluster, whose Job pods exit 0 unless a fault says otherwise.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.api.test_auth import issue
from tests.api.test_rollouts import deploy, finished, verified_digest, wait_for
from tests.conftest import APPS_NAMESPACE, Api

pytestmark = pytest.mark.usefixtures("healthy_cluster")


@pytest.fixture
def app_name(api: Api, unique_name: str) -> str:
    api.post("/apps", {"name": unique_name})
    return unique_name


@pytest.fixture
def serving(api: Api, app_name: str) -> dict[str, Any]:
    release = deploy(api, app_name, verified_digest(api, app_name))
    done = wait_for(api, release["deployment_id"], finished)
    assert done["status"] == "succeeded", done
    return done


def start(api: Api, app_name: str, **body: Any) -> dict[str, Any]:
    reply = api.post(f"/apps/{app_name}/runs", {"command": ["node", "-e", "1"], **body})
    assert reply.status == 201, reply.body
    return dict(reply.json)


def ended(api: Api, app_name: str, run_id: str) -> dict[str, Any]:
    """Poll the run for at most a minute (the bound only stops a test that would hang)."""
    body: dict[str, Any] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = api.get(f"/apps/{app_name}/runs/{run_id}").json
        if body["status"] != "running":
            return body
        time.sleep(0.1)
    raise AssertionError(f"the run never ended: {body}")


def test_a_run_runs_from_the_serving_release_and_is_listed(
    api: Api, app_name: str, serving: dict[str, Any]
) -> None:
    run = start(api, app_name)
    assert run["command"] == ["node", "-e", "1"]
    assert run["version"] == serving["version"]
    assert run["app_name"] == app_name
    done = ended(api, app_name, run["run_id"])
    assert (done["status"], done["exit_code"], done["reason"]) == ("succeeded", 0, None)
    assert done["finished_at"] is not None
    lines = api.get(f"/apps/{app_name}/runs/{run['run_id']}/logs").json
    assert {line["container"] for line in lines["lines"]} == {"fetch", "job"}
    listed = api.get(f"/apps/{app_name}/runs").json["runs"]
    assert [r["run_id"] for r in listed] == [run["run_id"]]
    assert listed[0]["created_by"] == done["created_by"] and done["created_by"]


def test_a_failing_run_says_its_exit_code(
    api: Api, app_name: str, serving: dict[str, Any], kube_simulator: Any
) -> None:
    kube_simulator.crash_loop(APPS_NAMESPACE, label_selector=f"app=aether-job,app_name={app_name}")
    done = ended(api, app_name, start(api, app_name)["run_id"])
    assert (done["status"], done["exit_code"]) == ("failed", 1)
    assert done["reason"].startswith("exited with code 1")


def test_a_stopped_run_is_gone(
    api: Api, app_name: str, serving: dict[str, Any], kube_simulator: Any
) -> None:
    kube_simulator.never_ready(APPS_NAMESPACE, label_selector=f"app=aether-job,app_name={app_name}")
    run = start(api, app_name, timeout_seconds=120)
    stopped = api.delete(f"/apps/{app_name}/runs/{run['run_id']}")
    assert (stopped.status, stopped.json["stopped"]) == (200, True)
    gone = api.get(f"/apps/{app_name}/runs/{run['run_id']}")
    assert (gone.status, gone.json["code"]) == (404, "not_found")
    again = api.delete(f"/apps/{app_name}/runs/{run['run_id']}")
    assert (again.status, again.json["code"]) == (404, "not_found")


def test_a_run_needs_a_release_that_serves(api: Api, app_name: str) -> None:
    reply = api.post(f"/apps/{app_name}/runs", {"command": ["true"]})
    assert (reply.status, reply.json["code"]) == (409, "conflict")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"command": "node -e 1"},
        {"command": []},
        {"command": ["node", ""]},
        {"command": ["node", 3]},
        {"command": ["a\x00b"]},
        {"command": ["x" * 4097]},
        {"command": ["x"] * 257},
        {"command": ["true"], "timeout_seconds": 0},
        {"command": ["true"], "timeout_seconds": 4 * 3600 + 1},
        {"command": ["true"], "timeout_seconds": "60"},
    ],
)
def test_a_bad_run_is_refused(
    api: Api, app_name: str, serving: dict[str, Any], body: dict[str, Any]
) -> None:
    reply = api.post(f"/apps/{app_name}/runs", body)
    assert (reply.status, reply.json["code"]) == (400, "bad_request"), reply.body


def test_a_run_is_found_only_under_its_own_app_and_owner(
    api: Api, app_name: str, serving: dict[str, Any], unique_name: str
) -> None:
    run = start(api, app_name)
    other = unique_name[:40] + "-other"
    assert api.post("/apps", {"name": other}).status == 201
    for method in ("GET", "DELETE"):
        reply = api.call(method, f"/apps/{other}/runs/{run['run_id']}")
        assert (reply.status, reply.json["code"]) == (404, "not_found")
    malformed = api.get(f"/apps/{app_name}/runs/not-a-run")
    assert (malformed.status, malformed.json["code"]) == (400, "bad_request")
    stranger = api.as_(issue(api, unique_name + "-stranger"))
    for method, path, body in (
        ("POST", "runs", {"command": ["true"]}),
        ("GET", "runs", None),
        ("GET", f"runs/{run['run_id']}", None),
        ("GET", f"runs/{run['run_id']}/logs", None),
        ("DELETE", f"runs/{run['run_id']}", None),
    ):
        reply = stranger.call(method, f"/apps/{app_name}/{path}", body)
        assert (reply.status, reply.json["code"]) == (404, "not_found"), (method, path)
    assert api.get(f"/apps/{app_name}/runs/{run['run_id']}").status == 200


def test_the_runs_are_in_the_api_document(api: Api) -> None:
    paths = api.get("/openapi.json").json["paths"]
    assert set(paths["/apps/{app_name}/runs"]) == {"get", "post"}
    assert set(paths["/apps/{app_name}/runs/{run_id}"]) == {"get", "delete"}
    assert "get" in paths["/apps/{app_name}/runs/{run_id}/logs"]
    body = paths["/apps/{app_name}/runs"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["required"] == ["command"]
