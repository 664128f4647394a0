"""A tiny Node app packed in the test, a loopback artifact server, and bounded waits."""

from __future__ import annotations

import collections
import hashlib
import io
import json
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PULL_TOKEN = "pull-token-for-tests"

# MODE=serve (default) listens at once; MODE=late only once $TMPDIR/gate exists; MODE=crash
# exits with 3; MODE=fixed listens on $FIXED_PORT, not $PORT; MODE=missing requires a file the
# artifact lacks. GET /ready answers 503 until the gate exists (for an httpGet probe); GET
# /about says which Node, user and PATH run the app; GET /read?path=P whether it can read P.
SERVER_JS = """\
const http = require("node:http");
const fs = require("node:fs");
const path = require("node:path");
const message = fs.readFileSync(path.join(__dirname, "message.txt"), "utf8").trim();
const gate = path.join(process.env.TMPDIR || "/nonexistent", "gate");
const mode = process.env.MODE || "serve";
if (mode === "crash") {
  console.error(`${message}: crashing on purpose`);
  process.exit(3);
}
if (mode === "missing") {
  require(path.join(__dirname, "dist", "index.js"));
}
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://app");
  if (url.pathname === "/about") {
    const about = {
      version: process.version,
      uid: process.getuid(),
      gid: process.getgid(),
      groups: process.getgroups(),
      path: process.env.PATH,
      nodeEnv: process.env.NODE_ENV,
    };
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(about));
    return;
  }
  if (url.pathname === "/read") {
    let outcome;
    try {
      fs.readFileSync(url.searchParams.get("path"));
      outcome = "read";
    } catch (error) {
      outcome = error.code;
    }
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(outcome);
    return;
  }
  if (req.url === "/ready") {
    const open = fs.existsSync(gate);
    console.log(`readiness ${open ? 200 : 503}`);
    res.writeHead(open ? 200 : 503);
    res.end();
    return;
  }
  res.writeHead(200, { "content-type": "text/plain" });
  res.end(`${message} pid=${process.pid}\\n`);
});
const port = mode === "fixed" ? process.env.FIXED_PORT : process.env.PORT;
const listen = () =>
  server.listen(Number(port), "127.0.0.1", () => console.log(`${message} listening on ${port}`));
if (mode === "late") {
  console.log("waiting for the gate");
  const timer = setInterval(() => {
    if (fs.existsSync(gate)) {
      clearInterval(timer);
      listen();
    }
  }, 20);
} else {
  listen();
}
process.on("SIGTERM", () => process.exit(0));
"""


def node_app(message: str) -> bytes:
    """An app.tar.gz: package.json (start: node server.js), server.js, message.txt."""
    files = {
        "package.json": json.dumps(
            {"name": "probe-app", "version": "1.0.0", "scripts": {"start": "node server.js"}}
        ),
        "server.js": SERVER_JS,
        "message.txt": message + "\n",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArtifactServer:
    """``GET /artifacts/<digest>/download`` with a bearer token, as the control plane serves it."""

    def __init__(self) -> None:
        self.artifacts: dict[str, bytes] = {}
        self.authorized = 0
        self.refused = 0
        self.downloads: collections.Counter[str] = collections.Counter()  # by digest
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = self.path.strip("/").split("/")
                if self.headers.get("Authorization") != f"Bearer {PULL_TOKEN}":
                    server.refused += 1
                    self._answer(401, b'{"code": "unauthorized", "message": "bad token"}')
                    return
                server.authorized += 1
                body = server.artifacts.get(parts[1]) if len(parts) == 3 else None
                if body is not None:
                    server.downloads[parts[1]] += 1
                if body is None:
                    self._answer(404, b'{"code": "not_found", "message": "no artifact"}')
                    return
                self._answer(200, body)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, data: bytes, digest: str | None = None) -> str:
        """Serve ``data`` under ``digest`` (its own by default); return the digest."""
        digest = digest or sha256(data)
        self.artifacts[digest] = data
        return digest

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return stat[stat.rfind(")") + 2 :].split()[0] not in ("Z", "X")
