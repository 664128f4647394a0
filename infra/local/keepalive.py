"""A threaded WSGI server for the embedded records server that keeps connections open.

werkzeug's development server answers every request with ``Connection: close``, so each call
of a botocore client opens a new connection, and the server starts a new thread for it. The
control plane makes tens of record calls per request (a deploy's ``POST /deployments`` some
thirty); kept open, each of them saves a connection's setup on both sides, about a
millisecond here. The clients are AWS SDKs: every request has a ``Content-Length``, and
every answer is buffered and sent with its own. Request lines are logged, query strings
redacted (``infra.local.moto_server`` does the same for moto's own server).
"""

from __future__ import annotations

import io
import logging
import re
import sys
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote_to_bytes

Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

log = logging.getLogger("aether.records.http")

_QUERY = re.compile(r"\?[^\s]*")


def redact_query(line: str) -> str:
    """``line`` with every URL query string replaced by ``?…``: a presigned URL's query string
    is its credential, and a request log must not keep it."""
    return _QUERY.sub("?…", line)


def buffered(app: Wsgi, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Call ``app``: the status, headers and whole body of its answer."""
    captured: list[Any] = ["500 Internal Server Error", []]

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
        captured[:] = [status, list(headers)]

    result = app(environ, start_response)
    try:
        content = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return captured[0], captured[1], content


# Headers of the application's answer this server writes itself.
_OWN_HEADERS = frozenset({"connection", "content-length", "transfer-encoding"})


class KeepAliveServer(ThreadingHTTPServer):
    daemon_threads = True  # an idle kept-alive connection does not hold up a stop

    def __init__(self, address: tuple[str, int], app: Wsgi) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self.closing = False

    def shutdown(self) -> None:
        """Stop accepting, and answer no more requests on the connections kept open: what
        follows a stop (the records' compaction) sees no request after it."""
        self.closing = True
        super().shutdown()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the headers and the body go out as two writes
    timeout = 300  # an idle connection's thread ends after this long
    server: KeepAliveServer

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

    def _serve(self) -> None:
        if self.server.closing:
            self._answer("503 Service Unavailable", [], b"stopping\n", close=True)
            return
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            message = b"a request body needs a Content-Length\n"
            self._answer("411 Length Required", [], message, close=True)
            return
        declared = self.headers.get("Content-Length") or "0"
        if not declared.isdigit():
            message = b"Content-Length must be a number of bytes\n"
            self._answer("400 Bad Request", [], message, close=True)
            return
        length = int(declared)
        body = self.rfile.read(length) if length else b""
        try:
            status, headers, content = buffered(self.server.app, self._environ(body))
        except Exception:
            log.exception("the application failed on %s %s", self.command, self.path)
            self._answer("500 Internal Server Error", [], b"internal error\n")
            return
        self._answer(status, headers, content)

    def _environ(self, body: bytes) -> dict[str, Any]:
        path, _, query = self.path.partition("?")
        host, port = self.server.server_address[:2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name in set(self.headers.keys()):
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = ",".join(self.headers.get_all(name) or [])
        return environ

    def _answer(
        self, status: str, headers: list[tuple[str, str]], content: bytes, *, close: bool = False
    ) -> None:
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        for name, value in headers:
            if name.lower() not in _OWN_HEADERS:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        if close:
            self.send_header("Connection", "close")  # and http.server closes it after this
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), redact_query(format % args))
