"""Release commands and one-off runs on the embedded stack, where pods are real processes.

The release command and the app share what an app's release phase usually prepares: a
database. Here that is a loopback record store in the test, its URL in the app's config: the
release command writes the schema version, and the app, when it starts, reads it and serves
it. Serving it proves the command ran, with the release's config, before the rollout.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from infra.local.private import PrivateStack
from tests.polling import serves
from tests.projects import NEEDS_EXAMPLE, PROJECTS

AETHER = str(Path(sys.executable).with_name("aether"))
APP = "migrating"

pytestmark = NEEDS_EXAMPLE

# The app reads the schema version once, as it starts, and serves it.
SERVER_JS = """\
'use strict';
const express = require('express');
const app = express();
const port = Number(process.env.PORT) || 3000;
fetch(`${process.env.STORE_URL}/schema`)
  .then((answer) => answer.text())
  .then((schema) => {
    app.get('/', (_req, res) => res.type('text/plain').send(`schema ${schema}\\n`));
    const server = app.listen(port, () => console.log(`serving schema ${schema}`));
    process.on('SIGTERM', () => server.close(() => process.exit(0)));
  });
"""
# The release command: records the version this release migrates to.
MIGRATE_JS = """\
'use strict';
const version = process.argv[2];
fetch(`${process.env.STORE_URL}/schema`, { method: 'PUT', body: version }).then((answer) => {
  console.log(`migrated to ${version}: ${answer.status}`);
});
"""


class RecordStore:
    """A loopback key-value store: PUT /key with a body, GET /key answers it ("none")."""

    def __init__(self) -> None:
        self.records: dict[str, str] = {}
        store = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(store.records.get(self.path, "none").encode())

            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                store.records[self.path] = self.rfile.read(length).decode()
                self._answer(b"stored")

            def _answer(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def store() -> Iterator[RecordStore]:
    running = RecordStore()
    yield running
    running.close()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = PROJECTS["example"].copy_to(tmp_path_factory.mktemp("migrating"))
    (project / "server.js").write_text(SERVER_JS)
    (project / "migrate.js").write_text(MIGRATE_JS)
    (project / "aether.toml").write_text(
        f'app = "{APP}"\n\n[deploy]\nrelease_command = "node migrate.js 7"\n'
    )
    return project


def aether(
    stack: PrivateStack, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AETHER, *args],
        env=stack.cli_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def deployed(stack: PrivateStack, project: Path, store: RecordStore) -> dict[str, Any]:
    done = aether(
        stack,
        "deploy",
        "--path",
        str(project),
        "--env",
        f"STORE_URL={store.url}",
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_the_release_command_runs_before_the_rollout_and_the_app_sees_its_effect(
    stack: PrivateStack, deployed: dict[str, Any], store: RecordStore
) -> None:
    assert deployed["status"] == "succeeded"
    serves(deployed["url"], "schema 7\n")
    logs = aether(stack, "logs", "--app", APP, "--release", "v1")
    assert logs.returncode == 0, logs.stderr
    assert "migrated to 7: 200" in logs.stdout


def test_a_failing_release_command_fails_the_deploy_and_the_old_release_serves(
    stack: PrivateStack, deployed: dict[str, Any], project: Path
) -> None:
    failing = "node -e \"console.log('relation users already exists'); process.exit(1)\""
    done = aether(stack, "deploy", "--path", str(project), "--release-command", failing)
    assert done.returncode == 20, done.stderr
    assert "the release command failed: exited with code 1" in done.stderr
    assert "relation users already exists" in done.stderr, "its last lines are shown"
    assert "aether logs --release v" in done.stderr
    serves(deployed["url"], "schema 7\n")
    version = done.stderr.split("aether logs --release v", 1)[1].split("`")[0]
    logs = aether(stack, "logs", "--app", APP, "--release", f"v{version}")
    assert "relation users already exists" in logs.stdout
    again = aether(
        stack, "deploy", "--path", str(project), "--release-command", "node migrate.js 8"
    )
    assert again.returncode == 0, again.stderr


def test_aether_run_prints_the_output_and_exits_with_the_code(
    stack: PrivateStack, deployed: dict[str, Any]
) -> None:
    done = aether(
        stack, "run", "--app", APP, "--", "node", "-e", "console.log(6*7); process.exit(3)"
    )
    assert (done.returncode, done.stdout) == (3, "42\n"), done.stderr
    config = aether(stack, "run", "--app", APP, "--", "sh", "-c", 'echo "$STORE_URL"; id -u')
    assert config.returncode == 0, config.stderr
    assert config.stdout.splitlines()[0].startswith("http://127.0.0.1:")


def test_a_detached_run_is_listed_and_its_output_read(
    stack: PrivateStack, deployed: dict[str, Any]
) -> None:
    started = aether(
        stack, "run", "--app", APP, "--detach", "--format", "json", "--", "echo", "detached"
    )
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["run_id"]
    for _ in range(240):
        listed = json.loads(aether(stack, "runs", "--app", APP, "--format", "json").stdout)
        mine = next(r for r in listed["runs"] if r["run_id"] == run_id)
        if mine["status"] != "running":
            break
        time.sleep(0.25)
    assert (mine["status"], mine["exit_code"], mine["command"]) == (
        "succeeded",
        0,
        ["echo", "detached"],
    )
    output = aether(stack, "logs", "--app", APP, "--run", run_id)
    assert "detached" in output.stdout
    table = aether(stack, "runs", "--app", APP)
    assert run_id in table.stdout


def test_ctrl_c_stops_the_run(stack: PrivateStack, deployed: dict[str, Any]) -> None:
    command = [
        AETHER,
        "run",
        "--app",
        APP,
        "--",
        "node",
        "-e",
        "console.log('started'); setInterval(() => {}, 1000)",
    ]
    running = subprocess.Popen(
        command, env=stack.cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert running.stdout is not None
    assert running.stdout.readline() == "started\n"
    running.send_signal(signal.SIGINT)
    _, stderr = running.communicate(timeout=60)
    assert running.returncode == 130, stderr
    assert "stopped run" in stderr
    listed = json.loads(aether(stack, "runs", "--app", APP, "--format", "json").stdout)
    assert all(
        r["command"][-1:] != ["console.log('started'); setInterval(() => {}, 1000)"]
        for r in listed["runs"]
    )


def test_bad_run_input_is_one_line_and_its_exit_code(
    stack: PrivateStack, deployed: dict[str, Any]
) -> None:
    for args, code in (
        (["run", "--app", APP], 2),
        (["run", "--app", APP, "--timeout", "0", "--", "true"], 2),
        (["run", "--app", APP, "--timeout", "999999", "--", "true"], 20),
        (["run", "--app", APP + "-nope", "--", "true"], 20),
        (["logs", "--app", APP, "--release", "latest"], 2),
        (["logs", "--app", APP, "--release", "v1", "--run", "0123456789ab"], 2),
        (["logs", "--app", APP, "--run", "0123456789ab"], 20),
    ):
        done = aether(stack, *args)
        assert done.returncode == code, (args, done.stderr)
        if code == 20:
            assert done.stderr.startswith("error: ") and len(done.stderr.splitlines()) <= 2, args
