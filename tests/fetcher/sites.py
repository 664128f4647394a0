"""Local HTTP sites on 127.0.0.1 and the behaviours tests mount on them.

Two sites stand in for the control plane (checks the bearer token, answers 307) and for
object storage (a different port, so a different origin: it must never see the token).
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Behaviour = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Site:
    """An http.server on 127.0.0.1; each test mounts its behaviours at fresh paths."""

    server: ThreadingHTTPServer
    routes: dict[str, Behaviour] = field(default_factory=dict)
    requests: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def mount(self, behaviour: Behaviour) -> str:
        """Serve `behaviour` at a new path; return its full URL."""
        path = f"/{uuid.uuid4().hex}/app.tar.gz"
        self.routes[path] = behaviour
        return self.origin + path

    def mount_at(self, path: str, behaviour: Behaviour) -> str:
        """Serve `behaviour` at `path` (starting with /); return its full URL."""
        self.routes[path] = behaviour
        return self.origin + path

    def seen(self, url: str) -> list[dict[str, str]]:
        """Headers of every request that reached `url`'s path, in order."""
        return self.requests.get(urllib.parse.urlsplit(url).path, [])


def start_site() -> Site:
    site: Site

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            site.requests.setdefault(path, []).append(dict(self.headers.items()))
            behaviour = site.routes.get(path)
            if behaviour is None:
                send(self, 404, b'{"code": "not_found", "message": "no such artifact"}')
            else:
                behaviour(self)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output for assertions

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    site = Site(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return site


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def body(data: bytes) -> Behaviour:
    return lambda handler: send(handler, 200, data)


def truncated(data: bytes, missing: int) -> Behaviour:
    """Announce more bytes than are sent, then hang up."""

    def behaviour(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data) + missing))
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()
        handler.close_connection = True

    return behaviour


def failing(times: int, status: int, then: Behaviour) -> Behaviour:
    count = {"n": 0}

    def behaviour(handler: BaseHTTPRequestHandler) -> None:
        count["n"] += 1
        if count["n"] <= times:
            send(handler, status, b'{"code": "service_unavailable", "message": "try later"}')
        else:
            then(handler)

    return behaviour


def bearer(token: str, then: Behaviour) -> Behaviour:
    """The control plane: 401 with the error envelope unless the token matches."""

    def behaviour(handler: BaseHTTPRequestHandler) -> None:
        if handler.headers.get("Authorization") != f"Bearer {token}":
            envelope = {"code": "unauthorized", "message": "missing or invalid token"}
            send(handler, 401, json.dumps(envelope).encode())
        else:
            then(handler)

    return behaviour


def redirect(location: str, status: int = 307) -> Behaviour:
    def behaviour(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return behaviour


def anonymous(then: Behaviour) -> Behaviour:
    """Presigned storage: a request that carries an Authorization header is refused."""

    def behaviour(handler: BaseHTTPRequestHandler) -> None:
        if "Authorization" in handler.headers:
            send(handler, 400, b"<Error><Code>InvalidArgument</Code></Error>")
        else:
            then(handler)

    return behaviour


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
