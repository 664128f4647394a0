"""What a newcomer meets on the embedded stack, where pods are real processes: a rollout
that never gets ready, Ctrl-C while following it, and ``make demo`` itself."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from infra.local.private import PrivateStack
from tests.cli.fixtures_commands import write_project
from tests.cli.test_commands_stack import read_until
from tests.projects import NEEDS_EXAMPLE

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hello-express"
AETHER = str(Path(sys.executable).with_name("aether"))

pytestmark = NEEDS_EXAMPLE


def aether(stack: PrivateStack, *args: str, exit_code: int = 0) -> Any:
    done = subprocess.run(
        [AETHER, *args, "--format", "json"],
        env=stack.cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == exit_code, done.stderr
    return json.loads(done.stdout)


def test_ctrl_c_while_following_a_rollout_says_it_goes_on(
    stack: PrivateStack, tmp_path: Path
) -> None:
    # Never listens on PORT, so the readiness probe never passes.
    supported = {"engines": {"node": ">=22"}}  # the platform refuses end-of-life Node lines
    project = write_project(tmp_path / "sleeper", name="sleeper", extra=supported)
    (project / "server.js").write_text("setInterval(() => {}, 1000);\n")
    started = aether(stack, "deploy", "--path", str(project), "--no-sbom", "--no-wait")
    deployment_id = started["deployment_id"]

    following = subprocess.Popen(
        [AETHER, "status", deployment_id, "--follow"],
        env=stack.cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    read_until(following, following.stderr, "rolling out")
    following.send_signal(signal.SIGINT)
    _, stderr = following.communicate(timeout=60)
    assert following.returncode == 130
    assert stderr.splitlines()[-1] == (
        f"error: stopped following deployment {deployment_id}; its rollout goes on; "
        f"follow it again with `aether status {deployment_id} --follow`"
    )
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    assert aether(stack, "status", deployment_id)["status"] == "rolling_out"


def test_a_release_that_crashes_leaves_the_previous_one_serving_and_says_so(
    stack: PrivateStack, tmp_path: Path
) -> None:
    import requests

    project = tmp_path / "hello-express"
    shutil.copytree(EXAMPLE, project, symlinks=True, ignore=shutil.ignore_patterns(".aether"))
    deploy = ["deploy", "--path", str(project), "--app", "still-serving", "--no-sbom"]
    first = aether(stack, *deploy)
    assert first["status"] == "succeeded"
    failed = aether(stack, *deploy, "--start-command", "node -e 'process.exit(1)'", exit_code=20)
    assert failed["error"]["code"] == "deployment_failed"

    (app,) = [a for a in aether(stack, "list")["apps"] if a["name"] == "still-serving"]
    assert app["latest_deployment"]["status"] == "failed"
    assert app["serving"]["deployment_id"] == first["deployment_id"]
    assert app["serving"]["url"] == first["url"]
    answer = requests.get(first["url"], timeout=10)
    assert answer.text == "hello from aether (hello-express 1.0.0)\n"


def test_make_demo_runs_on_a_stack_in_another_state_directory(stack: PrivateStack) -> None:
    demo = subprocess.run(
        ["bash", str(ROOT / "infra" / "local" / "demo.sh")],
        env=stack.env,  # AETHER_STATE_DIR and the ports of the private stack
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "hello from aether (hello-express 1.0.0)" in demo.stdout
    assert "==> aether list" in demo.stdout and "\x1b[" not in demo.stdout
    assert (stack.state / "demo" / "cache" / "aether" / "session.json").exists()
    # The demo uploaded and downloaded through presigned URLs: no log kept one whole.
    for log in (stack.state / "logs").rglob("*"):
        if log.is_file():
            text = log.read_text(errors="replace")
            assert "X-Amz-Signature" not in text and "X-Amz-Credential" not in text, log
