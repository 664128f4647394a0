"""Nothing is lost when the embedded stack restarts: ``make down && make up``, and ``kill -9``
of any one component followed by ``make up``.

One private stack for the module: the example is deployed once, then every test restarts or
kills something and checks that apps, artifacts, deployments, tokens and the upload event
subscription are all still there, and that the app serves again with no user action (the
scheduled reconciler gives a restarted cluster its workloads back).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from chalicelib.contract import default_runtime
from infra.local.private import PrivateStack, read_env_file
from tests.projects import NEEDS_EXAMPLE, PROJECTS

AETHER = str(Path(sys.executable).with_name("aether"))
APP = "hello-express"
COMPONENTS = ("records", "seaweedfs", "relay", "api", "cluster")
# Polls are bounded by count, never asserted on time: the reconciler runs every 10 s.
ANSWER_TRIES = 600
VERIFY_TRIES = 600
POLL_SECONDS = 0.2

pytestmark = NEEDS_EXAMPLE


@pytest.fixture(scope="module")
def deployed(stack: PrivateStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project = PROJECTS["example"].copy_to(tmp_path_factory.mktemp("project"))
    first = aether(stack, "deploy", "--path", str(project))
    assert first["status"] == "succeeded"
    assert answer(first["url"]).startswith("hello from aether")
    return {**first, "project": project}


def aether(stack: PrivateStack, *args: str) -> Any:
    import json

    env = stack.cli_env()
    done = subprocess.run(
        [AETHER, *args, "--format", "json"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def call(stack: PrivateStack, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {token or stack.env['AETHER_TOKEN']}"}
    headers.update(kw.pop("headers", {}))
    return requests.request(method, stack.api_url + path, headers=headers, timeout=30, **kw)


def answer(url: str) -> str:
    """What the app says, once it serves again (its pods may be starting)."""
    for _ in range(ANSWER_TRIES):
        try:
            response = requests.get(url, timeout=5)
            if response.ok:
                return response.text
        except requests.RequestException:
            pass
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"{url} never answered")


def everything(stack: PrivateStack) -> dict[str, Any]:
    """What must survive, as the API shows it."""
    apps = call(stack, "GET", "/apps").json()["apps"]
    return {
        "apps": sorted((a["name"], a.get("owner")) for a in apps),
        "artifacts": sorted(
            (a["digest"], a["status"])
            for a in call(stack, "GET", f"/artifacts?app_name={APP}&limit=100").json()["artifacts"]
        ),
        "deployments": [
            (d["deployment_id"], d["status"], d["artifact_digest"], d["url"])
            for d in call(stack, "GET", f"/apps/{APP}/deployments?limit=100").json()["deployments"]
        ],
        "tokens": sorted(
            (t["token_id"], t["subject"], t["revoked"])
            for t in call(stack, "GET", "/tokens").json()["tokens"]
        ),
    }


def developer_token(stack: PrivateStack, subject: str) -> str:
    issued = call(stack, "POST", "/tokens", json={"subject": subject, "role": "developer"})
    assert issued.status_code == 201, issued.text
    token: str = issued.json()["token"]
    return token


def request_upload(stack: PrivateStack, body: bytes) -> tuple[str, dict[str, Any]]:
    digest = hashlib.sha256(body).hexdigest()
    ticket = call(
        stack,
        "POST",
        "/artifacts",
        json={"app_name": APP, "size_bytes": len(body), "runtime": default_runtime()},
        headers={"X-Aether-Artifact-Digest": digest},
    )
    assert ticket.status_code == 201, ticket.text
    return digest, ticket.json()["upload"]


def put(upload: dict[str, Any], body: bytes) -> requests.Response:
    return requests.put(upload["url"], data=body, headers=upload["headers"], timeout=60)


def verified_by_the_event(stack: PrivateStack, digest: str) -> bool:
    """Whether the upload's event reached the handler: ``GET /artifacts/{digest}`` only reads
    the record (unlike ``HEAD``, it never re-hashes on demand)."""
    for _ in range(VERIFY_TRIES):
        found = call(stack, "GET", f"/artifacts/{digest}?app_name={APP}")
        if found.ok and found.json()["status"] != "pending":
            return bool(found.json()["status"] == "verified")
        time.sleep(POLL_SECONDS)
    return False


def test_down_and_up_lose_nothing(stack: PrivateStack, deployed: dict[str, Any]) -> None:
    developer = developer_token(stack, "dev-down-up")
    admin = stack.env["AETHER_TOKEN"]
    before = everything(stack)

    stack.down()
    stack.up()

    assert read_env_file(stack.state / "local.env")["AETHER_TOKEN"] == admin
    assert call(stack, "GET", "/whoami", token=admin).json()["role"] == "admin"
    assert call(stack, "GET", "/whoami", token=developer).json()["subject"] == "dev-down-up"
    assert everything(stack) == before
    assert answer(deployed["url"]).startswith("hello from aether")
    again = aether(stack, "deploy", "--path", str(deployed["project"]))
    assert (again["uploaded"], again["digest"]) == (False, deployed["digest"])


@pytest.mark.parametrize("component", COMPONENTS)
def test_a_killed_component_loses_nothing(
    stack: PrivateStack, deployed: dict[str, Any], component: str
) -> None:
    developer = developer_token(stack, f"dev-{component}")  # acknowledged just before the kill
    before = everything(stack)

    os.kill(stack.pid(component), 9)
    stack.up()

    assert call(stack, "GET", "/whoami", token=developer).json()["subject"] == f"dev-{component}"
    assert everything(stack) == before
    assert answer(deployed["url"]).startswith("hello from aether")
    body = os.urandom(4096)
    digest, upload = request_upload(stack, body)
    assert put(upload, body).ok
    assert verified_by_the_event(stack, digest)


def test_uploads_while_the_relay_is_down_are_delivered_when_it_is_back(
    stack: PrivateStack, deployed: dict[str, Any]
) -> None:
    os.kill(stack.pid("relay"), 9)
    bodies = [os.urandom(2048) for _ in range(3)]
    digests = []
    for body in bodies:
        digest, upload = request_upload(stack, body)
        assert put(upload, body).ok
        digests.append(digest)
    stack.up()
    assert all(verified_by_the_event(stack, digest) for digest in digests)


def test_an_upload_killed_midway_is_retried_and_ends_verified(
    stack: PrivateStack, deployed: dict[str, Any]
) -> None:
    body = os.urandom(4 * 1024 * 1024)
    digest, upload = request_upload(stack, body)
    target = urlsplit(upload["url"])
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
    connection.putrequest("PUT", f"{target.path}?{target.query}", skip_accept_encoding=True)
    for name, value in upload["headers"].items():
        connection.putheader(name, value)
    connection.endheaders()
    connection.send(body[: len(body) // 4])  # a quarter on its way, then storage dies

    os.kill(stack.pid("seaweedfs"), 9)
    with pytest.raises((OSError, http.client.HTTPException)):
        connection.send(body[len(body) // 4 :])
        connection.getresponse()
    connection.close()
    stack.up()

    assert put(upload, body).ok  # the same presigned URL, still valid
    assert verified_by_the_event(stack, digest)
    head = call(stack, "HEAD", f"/artifacts/{digest}?app_name={APP}")
    assert head.status_code == 200
