"""The main job on the embedded stack, as ``make demo`` runs it, through the real CLI.

Deploy → the app answers → an unchanged redeploy uploads nothing → a source
change uploads only the app layer and rolls out a new digest at the same URL →
rollback brings the old answer back → a tampered artifact never runs.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from chalicelib.contract import default_runtime
from infra.local.private import PrivateStack
from tests.projects import NEEDS_EXAMPLE, PROJECTS

AETHER = str(Path(sys.executable).with_name("aether"))

pytestmark = NEEDS_EXAMPLE


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return PROJECTS["example"].copy_to(tmp_path_factory.mktemp("project"))


def aether(stack: PrivateStack, *args: str) -> Any:
    env = stack.cli_env()
    done = subprocess.run(
        [AETHER, *args, "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def answer(url: str) -> str:
    """What the app says now; the Service URL may take a moment to reach a fresh pod."""
    for _ in range(50):
        try:
            response = requests.get(url, timeout=5)
            if response.ok:
                return response.text
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


def test_deploy_redeploy_change_rollback_and_refuse_tampering(
    stack: PrivateStack, project: Path
) -> None:
    first = aether(stack, "deploy", "--path", str(project))
    assert (first["uploaded"], first["status"]) == (True, "succeeded")
    assert [(layer["role"], layer["uploaded"]) for layer in first["layers"]] == [
        ("deps", True),
        ("app", True),
    ]
    url = first["url"]
    assert url.startswith("http://127.0.0.1:")
    assert answer(url) == "hello from aether (hello-express 1.0.0)\n"

    again = aether(stack, "deploy", "--path", str(project))
    assert again["uploaded"] is False
    assert again["digest"] == first["digest"]
    assert again["status"] == "succeeded"

    server = project / "server.js"
    server.write_text(server.read_text().replace("hello from aether", "hello again from aether"))
    changed = aether(stack, "deploy", "--path", str(project))
    assert changed["uploaded"] is True
    assert changed["digest"] != first["digest"]
    # A source-only change: the dependencies layer is the one the platform holds.
    deps, app = changed["layers"]
    assert (deps["digest"], deps["uploaded"], app["uploaded"]) == (
        first["layers"][0]["digest"],
        False,
        True,
    )
    assert changed["uploaded_bytes"] < 0.05 * changed["size_bytes"]
    assert changed["url"] == url
    assert answer(url) == "hello again from aether (hello-express 1.0.0)\n"

    rolled = aether(stack, "rollback", "--app", "hello-express")
    assert rolled["artifact_digest"] == first["digest"]
    assert rolled["status"] == "succeeded"
    assert answer(url) == "hello from aether (hello-express 1.0.0)\n"

    refused = _deploy_tampered_bytes(stack, "hello-express")
    assert refused.status_code == 409
    assert refused.json()["code"] == "artifact_not_verified"
    assert answer(url) == "hello from aether (hello-express 1.0.0)\n"


def _deploy_tampered_bytes(stack: PrivateStack, app: str) -> requests.Response:
    """Upload other bytes than the digest names, then try to deploy them. The stack's S3
    refuses both ways of doing it: without the signed checksum header (the signature no
    longer matches) and with it (the bytes do not match the checksum)."""
    api, token = stack.api_url, stack.env["AETHER_TOKEN"]
    headers = {"Authorization": f"Bearer {token}"}
    honest = b"an artifact that was never uploaded"
    digest = hashlib.sha256(honest).hexdigest()
    ticket = requests.post(
        f"{api}/artifacts",
        json={"app_name": app, "size_bytes": len(honest), "runtime": default_runtime()},
        headers={**headers, "X-Aether-Artifact-Digest": digest},
        timeout=10,
    ).json()
    upload = ticket["upload"]
    tampered = b"X" * len(honest)
    unsigned = {k: v for k, v in upload["headers"].items() if "checksum" not in k.lower()}
    assert (
        requests.put(upload["url"], data=tampered, headers=unsigned, timeout=10).status_code == 403
    )
    refused = requests.put(upload["url"], data=tampered, headers=upload["headers"], timeout=10)
    assert 400 <= refused.status_code < 500
    return requests.post(
        f"{api}/deployments",
        json={"app_name": app, "artifact_digest": digest},
        headers=headers,
        timeout=30,
    )
