"""The dashboard in a real browser: Debian's chromium, driven by playwright-core from npm.

``.ci/run`` installs both; on a machine without them the browser tests say they
skipped (and in CI, where they must run, they fail instead). Each scenario runs
in its own browser (``browser/run.mjs``) against a private embedded stack with
the demo app, an app that logs what it is asked, and a developer's own app.
Screenshots go to ``build/test-output/dashboard/`` (or ``$AETHER_TEST_OUTPUT/dashboard``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from infra.local.private import PrivateStack, private_stack
from tests.projects import PROJECTS

ROOT = Path(__file__).resolve().parents[2]
AETHER = str(Path(sys.executable).with_name("aether"))
CHROMIUM = Path("/usr/bin/chromium")
DRIVER = Path(__file__).with_name("browser")
OUTPUT = Path(os.environ.get("AETHER_TEST_OUTPUT") or ROOT / "build" / "test-output") / "dashboard"

CONFIG_NAME = "GREETING"
CONFIG_VALUE = "a-value-the-page-must-never-show"
HOSTILE_COMMAND = 'node server.js # <b>bold</b><img src=x onerror="window.pwned=3">'
DEVELOPER = "dev@example.com"
SPARE = "spare@example.com"  # a developer whose token the page revokes


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if shutil.which("node") is None:
        return "needs node"
    if not CHROMIUM.exists():
        return "needs Debian's chromium (apt-get install chromium)"
    if not (DRIVER / "node_modules" / "playwright-core").is_dir():
        return "needs playwright-core (npm ci --prefix tests/dashboard/browser)"
    if not PROJECTS["example"].warm:
        return "needs the example's dependencies (`make fixtures`)"
    return None


@pytest.fixture(scope="session")
def browser() -> None:
    reason = missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"the browser tests must run in CI: {reason}")
    pytest.skip(reason)


@dataclass(frozen=True)
class Platform:
    """The stack and what is deployed on it, as the scenarios read it."""

    stack: PrivateStack
    context: dict[str, Any]


def aether(stack: PrivateStack, *args: str) -> Any:
    env = stack.cli_env()
    done = subprocess.run(
        [AETHER, *args, "--format", "json"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def issue_token(stack: PrivateStack, subject: str, *, revoked: bool = False) -> str:
    """A stored developer token for ``subject``, issued (and maybe revoked) by the admin."""
    admin = {"Authorization": f"Bearer {stack.env['AETHER_TOKEN']}"}
    issued = requests.post(
        f"{stack.api_url}/tokens",
        json={"subject": subject, "role": "developer"},
        headers=admin,
        timeout=30,
    )
    assert issued.status_code == 201, issued.text
    if revoked:
        token_id = issued.json()["token_id"]
        gone = requests.delete(f"{stack.api_url}/tokens/{token_id}", headers=admin, timeout=30)
        assert gone.status_code == 200, gone.text
    token: str = issued.json()["token"]
    return token


def chatty_project(root: Path, version: str) -> Path:
    """An app without dependencies that logs every request's path, decoded."""
    root.mkdir(parents=True, exist_ok=True)
    package = {
        "name": "chatty",
        "version": "1.0.0",
        "private": True,
        "scripts": {"start": "node server.js"},
        "engines": {"node": ">=22"},
    }
    (root / "package.json").write_text(json.dumps(package, indent=2) + "\n")
    (root / "server.js").write_text(
        "const http = require('node:http');\n"
        "const decoded = (url) => { try { return decodeURIComponent(url); } catch { return url; } };\n"
        "const server = http.createServer((request, response) => {\n"
        "  console.log(`request ${decoded(request.url)}`);\n"
        f"  response.end('chatty {version}\\n');\n"
        "});\n"
        "server.listen(Number(process.env.PORT), () => console.log('chatty listening'));\n"
        "process.on('SIGTERM', () => server.close(() => process.exit(0)));\n"
    )
    return root


@pytest.fixture(scope="module")
def platform(browser: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with private_stack(tmp_path_factory.mktemp("stack")) as stack:
        demo = PROJECTS["example"].copy_to(tmp_path_factory.mktemp("demo"))
        aether(stack, "deploy", "--path", str(demo), "--no-sbom")
        configured = aether(
            stack,
            "deploy",
            "--path",
            str(demo),
            "--no-sbom",
            "--env",
            f"{CONFIG_NAME}={CONFIG_VALUE}",
        )

        chatty = tmp_path_factory.mktemp("chatty") / "chatty"
        first = aether(stack, "deploy", "--path", str(chatty_project(chatty, "1")), "--no-sbom")
        chatty_project(chatty, "2")
        second = aether(
            stack, "deploy", "--path", str(chatty), "--no-sbom", "--start-command", HOSTILE_COMMAND
        )
        assert second["url"] == first["url"]

        developer_token = issue_token(stack, DEVELOPER)
        spare_token = issue_token(stack, SPARE)
        revoked_token = issue_token(stack, "gone@example.com", revoked=True)
        registered = requests.post(
            f"{stack.api_url}/apps",
            json={"name": "dev-sandbox"},
            headers={"Authorization": f"Bearer {developer_token}"},
            timeout=30,
        )
        assert registered.status_code == 201, registered.text

        yield Platform(
            stack,
            {
                "dashboard": f"{stack.api_url}/dashboard",
                "chromium": str(CHROMIUM),
                "output": str(OUTPUT),
                "admin_token": stack.env["AETHER_TOKEN"],
                "demo_app": "hello-express",
                "demo_url": configured["url"],
                "demo_releases": 2,
                "config_name": CONFIG_NAME,
                "config_value": CONFIG_VALUE,
                "chatty_app": "chatty",
                "chatty_url": second["url"].rstrip("/"),
                "hostile_command": HOSTILE_COMMAND,
                "rollback_to": first["deployment_id"],
                "developer_token": developer_token,
                "developer_app": "dev-sandbox",
                "spare_subject": SPARE,
                "spare_token": spare_token,
                "revoked_token": revoked_token,
            },
        )


def run_scenario(platform: Platform, name: str) -> dict[str, Any]:
    """Run one scenario of ``browser/run.mjs``; what it measured is also kept beside its screenshots."""
    done = subprocess.run(
        ["node", str(DRIVER / "run.mjs"), name],
        env={**os.environ, "AETHER_DASHBOARD_CONTEXT": json.dumps(platform.context)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr or done.stdout
    measured: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    (OUTPUT / f"{name}.json").write_text(json.dumps(measured, indent=2) + "\n")
    return measured
