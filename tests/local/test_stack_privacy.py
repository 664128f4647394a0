"""On a stack run as root, an app cannot read the stack's own files: the admin token in
``local.env``, the kubeconfig, the logs, the webhook token; nor list the state directory."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from infra.local.private import PrivateStack, private_stack
from tests.cli.fixtures_commands import write_project

AETHER = str(Path(sys.executable).with_name("aether"))
PRIVATE = ["local.env", "kubeconfig", "webhook-token", "logs/api.log", "logs/cluster.log"]
# Tries each path under $STATE and answers what happened: "read" or the error code.
PROBE = """\
const fs = require("node:fs");
const path = require("node:path");
const tried = (what) => { try { what(); return "read"; } catch (error) { return error.code; } };
require("node:http").createServer((req, res) => {
  const state = "/" + process.env.STATE;
  const outcome = { ".": tried(() => fs.readdirSync(state)) };
  for (const name of JSON.parse(process.env.PRIVATE)) {
    outcome[name] = tried(() => fs.readFileSync(path.join(state, name)));
  }
  res.end(JSON.stringify(outcome));
}).listen(process.env.PORT);
"""

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("node") is None,
    reason="only a stack run as root runs its apps as another user (and it needs node)",
)


@pytest.fixture(scope="module")
def stack() -> Iterator[PrivateStack]:
    # Where a checkout usually is: a directory other users may traverse.
    parent = Path(tempfile.mkdtemp(prefix="aether-test-stack-"))
    parent.chmod(0o755)
    try:
        with private_stack(parent / ".aether") as running:
            yield running
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_an_app_cannot_read_the_stacks_secrets(stack: PrivateStack, tmp_path: Path) -> None:
    project = write_project(tmp_path / "nosy", name="nosy", extra={"engines": {"node": ">=22"}})
    (project / "server.js").write_text(PROBE)
    env = {
        **stack.env,
        "XDG_CONFIG_HOME": str(tmp_path / "cli-config"),
        "XDG_CACHE_HOME": str(tmp_path / "cli-cache"),
    }
    deployed = subprocess.run(
        [AETHER, "deploy", "--path", str(project), "--no-sbom", "--format", "json",
         # Without its leading "/": the runtime would map a value under /tmp into the pod's
         # own /tmp volume, as it maps /app.
         "--env", f"STATE={str(stack.state).lstrip('/')}",
         "--env", f"PRIVATE={json.dumps(PRIVATE)}"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    url = json.loads(deployed.stdout)["url"]

    outcome = requests.get(url, timeout=10).json()

    assert outcome == {".": "EACCES", **{name: "EACCES" for name in PRIVATE}}
    assert stat.S_IMODE(stack.state.stat().st_mode) == 0o711
    for name in PRIVATE:
        assert stat.S_IMODE((stack.state / name).stat().st_mode) & 0o077 == 0, name
