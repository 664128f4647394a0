"""Every kind of project, built at the edge, deploys to the embedded stack and answers.

TypeScript, a bundler, pnpm, Yarn 1 and 4, npm and pnpm workspaces and native addons:
each is built by the real CLI with its real package manager (warm from `make
fixtures`), deployed to a private embedded stack, and served by a pod running the Node
major the project asked for. An app that ignores PORT fails, and says so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from infra.local.private import PrivateStack
from tests.projects import PROJECTS

AETHER = str(Path(sys.executable).with_name("aether"))
KINDS = [
    "typescript",
    "esbuild",
    "pnpm",
    "yarn-classic",
    "yarn-berry",
    "npm-workspaces",
    "pnpm-workspaces",
    "native-addon",
]

pytestmark = pytest.mark.skipif(
    shutil.which("npm") is None or not all(PROJECTS[kind].warm for kind in [*KINDS, "fixed-port"]),
    reason="needs npm and the fixture projects built (`make fixtures`)",
)


def deploy(
    stack: PrivateStack, app_dir: Path, app: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    env = stack.cli_env()
    return subprocess.run(
        [AETHER, "deploy", "--path", str(app_dir), "--app", app, "--format", "json", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def answer(url: str) -> dict[str, Any]:
    for _ in range(100):
        try:
            response = requests.get(url, timeout=5)
            if response.ok:
                return dict(response.json())
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_deploys_and_answers_on_the_node_it_asked_for(
    stack: PrivateStack, tmp_path: Path, kind: str
) -> None:
    app_dir = PROJECTS[kind].copy_to(tmp_path)
    done = deploy(stack, app_dir, f"kind-{kind}")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    body = answer(result["url"])
    assert body["kind"] == PROJECTS[kind].root.name
    assert body["node"].startswith("v24."), body  # the host's own node is another major


def test_an_app_that_ignores_port_fails_saying_which_port_it_was_given(
    stack: PrivateStack, tmp_path: Path
) -> None:
    app_dir = PROJECTS["fixed-port"].copy_to(tmp_path)
    done = deploy(stack, app_dir, "kind-fixed-port", "--timeout", "120")
    assert done.returncode == 20, done.stderr
    message = json.loads(done.stdout)["error"]["message"]
    assert "PORT" in message and "3000" in message, message
