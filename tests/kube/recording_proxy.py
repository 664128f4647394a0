"""A loopback HTTP proxy that forwards to the API server and records every request.

The RBAC test points the official client at it, so what is recorded is exactly what the
Cluster class sends over the wire: nothing in the client or the code under test is patched.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    status: int


@dataclass(frozen=True)
class Permission:
    """What an API server authorizes a request as (its RequestInfo): group, resource, verb."""

    group: str
    resource: str  # "pods/log" for a subresource
    verb: str


def permissions(request: Request, namespace: str) -> set[Permission]:
    """The RBAC checks a real API server makes for ``request``; AssertionError if it is not a
    namespaced resource request in ``namespace`` (a Role could not grant it)."""
    parts = [p for p in request.path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        raise AssertionError(f"{request.method} {request.path} is not a resource request")
    if rest[:2] != ["namespaces", namespace] or len(rest) < 3:
        raise AssertionError(f"{request.method} {request.path} is not in namespace {namespace}")
    resource, name, sub = rest[2], rest[3] if len(rest) > 3 else None, rest[4:5]
    if sub:
        resource = f"{resource}/{sub[0]}"
    if request.method == "GET":
        verb = "get" if name else ("watch" if request.query.get("watch") == "true" else "list")
    elif request.method == "POST":
        verb = "create"
    elif request.method == "PUT":
        verb = "update"
    elif request.method == "PATCH":
        verb = "patch"
    elif request.method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        raise AssertionError(f"unexpected method {request.method}")
    checks = {Permission(group, resource, verb)}
    # An apply PATCH that creates the object is also authorized as a create.
    applied = verb == "patch" and request.content_type.startswith("application/apply-patch")
    if applied and request.status == 201:
        checks.add(Permission(group, resource, "create"))
    return checks


class RecordingProxy:
    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        self._upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream = http.client.HTTPConnection(*proxy._upstream, timeout=30)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                    reply_headers = [
                        (k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP
                    ]
                finally:
                    upstream.close()
                url = urlsplit(self.path)
                proxy._record(
                    Request(
                        method=self.command,
                        path=url.path,
                        query={k: v[-1] for k, v in parse_qs(url.query).items()},
                        content_type=(self.headers.get("Content-Type") or "").split(";")[0],
                        status=response.status,
                    )
                )
                self.send_response(response.status)
                for key, value in reply_headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        return Handler
