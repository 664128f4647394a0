"""``aether`` against the control plane served over HTTP, with moto S3 and the simulated cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.local.processes import Service
from tests.conftest import ADMIN_TOKEN
from tests.projects import PROJECTS

AETHER = str(Path(sys.executable).with_name("aether"))

pytestmark = pytest.mark.skipif(
    not PROJECTS["example"].warm,
    reason="the example's dependencies are not installed: run `make fixtures` once",
)


@pytest.fixture
def project(installed_example: Path) -> Path:
    return installed_example


def aether(
    local_api: Service, tmp_path: Path, *args: str, token: str = ADMIN_TOKEN, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "AETHER_API_URL": local_api.url,
        "AETHER_TOKEN": token,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        **env,
    }
    return subprocess.run(
        [AETHER, *args], capture_output=True, text=True, env=environment, timeout=180, check=False
    )


def deploy_args(project: Path, app: str) -> list[str]:
    return ["deploy", "--path", str(project), "--app", app, "--format", "json", "--no-sbom"]


def deploy_json(
    local_api: Service, tmp_path: Path, project: Path, app: str, *extra: str, **env: str
) -> Any:
    done = aether(local_api, tmp_path, *deploy_args(project, app), *extra, **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_deploy_uploads_once_then_skips_then_uploads_a_change(
    local_api: Service, tmp_path: Path, project: Path, unique_name: str
) -> None:
    first = deploy_json(local_api, tmp_path, project, unique_name)
    assert first["uploaded"] is True
    assert first["status"] == "succeeded"
    assert first["deployment_id"]

    unchanged = deploy_json(local_api, tmp_path, project, unique_name)
    assert unchanged["uploaded"] is False
    assert unchanged["digest"] == first["digest"]

    server = project / "server.js"
    server.write_text(server.read_text() + "\n// a one-line change\n")
    changed = deploy_json(local_api, tmp_path, project, unique_name)
    assert changed["uploaded"] is True
    assert changed["digest"] != first["digest"]
    assert changed["status"] == "succeeded"


def test_signed_deploy_is_verified_against_the_registered_key(
    local_api: Service, tmp_path: Path, project: Path, unique_name: str
) -> None:
    import requests

    seed = "11" * 32
    deploy_json(local_api, tmp_path, project, unique_name, "--no-wait")  # registers the app
    registered = aether(
        local_api, tmp_path, "keys", "add", "--app", unique_name, AETHER_SIGNING_KEY=seed
    )
    assert registered.returncode == 0, registered.stderr
    (project / "server.js").write_text((project / "server.js").read_text() + "\n// signed\n")
    signed = deploy_json(local_api, tmp_path, project, unique_name, AETHER_SIGNING_KEY=seed)
    assert signed["signature"]
    assert signed["status"] == "succeeded"
    artifact = requests.get(
        f"{local_api.url}/artifacts/{signed['digest']}?app_name={unique_name}",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    ).json()
    assert (artifact["status"], artifact["signature"]) == ("verified", "valid")


def test_a_wrong_token_is_one_json_error_and_exit_10(
    local_api: Service, tmp_path: Path, project: Path, unique_name: str
) -> None:
    done = aether(
        local_api,
        tmp_path,
        *deploy_args(project, unique_name),
        token="aet_0000000000000000_wrong",
    )
    assert done.returncode == 10
    assert json.loads(done.stdout)["error"]["code"] == "unauthorized"
    assert done.stdout.count("\n") == 1


def test_login_checks_the_token_and_stores_the_session_privately(
    local_api: Service, tmp_path: Path
) -> None:
    environment = {"AETHER_TOKEN": ""}
    refused = aether(
        local_api, tmp_path, "login", "--token", "nope", "--api-url", local_api.url, **environment
    )
    assert refused.returncode == 10
    assert refused.stderr.strip().count("\n") == 0
    accepted = aether(
        local_api,
        tmp_path,
        "login",
        "--token",
        ADMIN_TOKEN,
        "--api-url",
        local_api.url,
        **environment,
    )
    assert accepted.returncode == 0, accepted.stderr
    session = tmp_path / "cache" / "aether" / "session.json"
    assert session.stat().st_mode & 0o777 == 0o600
    assert ADMIN_TOKEN in session.read_text()


def test_list_and_status_read_the_real_api(
    local_api: Service, tmp_path: Path, project: Path, unique_name: str
) -> None:
    deployed = deploy_json(local_api, tmp_path, project, unique_name)
    listed = aether(local_api, tmp_path, "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert unique_name in listed.stdout
    status = aether(local_api, tmp_path, "status", "--app", unique_name, "--format", "json")
    assert status.returncode == 0, status.stderr
    assert deployed["deployment_id"] in status.stdout
