"""A scriptable HTTP server on 127.0.0.1 and helpers to run ``aether`` against it.

Test modules import the fixtures by their function names (``fake_api_fixture``,
``cli_env_fixture``) and use them as ``fake_api`` and ``cli_env``.

Only for what the real stack cannot be made to do on cue: answer 401 or 503 at
a given moment, stand in for a presigned-PUT target that records exactly what
it received. Each test scripts the routes it needs; an unscripted request gets a
bare 404 so a test notices it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aether_cli.session import cache_root

AETHER = str(Path(sys.executable).with_name("aether"))
TOKEN = "tok-cli-tests-0123456789"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list → JSON; bytes/str sent as is
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, bytes):
            payload = self.body
        elif isinstance(self.body, str):
            payload = self.body.encode()
        elif self.body is None:
            payload = b""
        else:
            payload = json.dumps(self.body).encode()
            headers.setdefault("Content-Type", "application/json")
        return payload, headers


Responder = Reply | Callable[[Recorded], Reply]


def envelope(status: int, code: str, message: str) -> Reply:
    return Reply(status, {"code": code, "message": message})


class ScriptedServer:
    """Routes are (method, path regex) → replies served in order, the last one repeating."""

    def __init__(self, *, head_writes_body: bool = False) -> None:
        # head_writes_body mimics chalice local, which sends a body after a
        # HEAD response (a keep-alive client then misreads the next response).
        self.head_writes_body = head_writes_body
        self.requests: list[Recorded] = []
        self._routes: list[tuple[str, re.Pattern[str], list[Responder]]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                recorded = Recorded(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                reply = server._reply(recorded)
                payload, headers = reply.encode()
                self.send_response(reply.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                elif server.head_writes_body:
                    # Late, as chalice local's is: the client has already
                    # reused the connection when these bytes arrive.
                    self.wfile.flush()
                    time.sleep(0.2)
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def on(self, method: str, pattern: str, *responses: Responder) -> None:
        """Script ``method`` on paths fully matching ``pattern``; later calls win."""
        self._routes.insert(0, (method, re.compile(pattern), list(responses)))

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        regex = re.compile(pattern)
        return [r for r in self.requests if r.method == method and regex.fullmatch(r.path)]

    def _reply(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            for method, regex, responses in self._routes:
                if method == recorded.method and regex.fullmatch(recorded.path):
                    responder = responses.pop(0) if len(responses) > 1 else responses[0]
                    break
            else:
                return Reply(404, "no scripted route\n")
        return responder(recorded) if callable(responder) else responder

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture(name="fake_api")
def fake_api_fixture() -> Iterator[ScriptedServer]:
    server = ScriptedServer().start()
    # Every command that will call the API checks its token first.
    server.on("GET", "/whoami", Reply(200, {"subject": "dev", "role": "admin"}))
    yield server
    server.stop()


def closed_port_url() -> str:
    """A loopback URL nobody listens on: bind, read the port, close."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def isolated_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The process environment minus any AETHER_*, with XDG dirs and HOME in tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AETHER_", "XDG_"))}
    env.update(
        # Node binaries and package managers come from the runner's own cache.
        AETHER_CACHE_DIR=str(cache_root(os.environ)),
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        NO_COLOR="1",
    )
    env.update(extra)
    return env


@pytest.fixture(name="cli_env")
def cli_env_fixture(tmp_path: Path) -> dict[str, str]:
    return isolated_env(tmp_path)


def run_aether(
    args: list[str],
    env: dict[str, str],
    *,
    cwd: Path | None = None,
    stdin: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it."""
    return subprocess.run(
        [AETHER, *args],
        env=env,
        cwd=cwd,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_project(
    root: Path, *, name: str = "demo-app", extra: dict[str, Any] | None = None
) -> Path:
    """A Node.js project without dependencies: npm installs it offline."""
    root.mkdir(parents=True, exist_ok=True)
    package = {
        "name": name,
        "version": "1.0.0",
        "private": True,
        "scripts": {"start": "node server.js"},
        "engines": {"node": "24.x"},
        **(extra or {}),
    }
    (root / "package.json").write_text(json.dumps(package, indent=2) + "\n")
    (root / "server.js").write_text(
        "require('http').createServer((q, s) => s.end('ok')).listen(process.env.PORT)\n"
    )
    return root


def single_json(stdout: str) -> Any:
    """stdout must be exactly one JSON object (one line, nothing around it)."""
    assert stdout.endswith("\n"), stdout
    assert stdout.count("\n") == 1, stdout
    data = json.loads(stdout)
    assert isinstance(data, dict)
    return data
