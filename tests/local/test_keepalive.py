"""The records server's HTTP server: connections kept open, bodies by length, a clean stop."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from infra.local.keepalive import KeepAliveServer


def echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "close")])
    return [environ["REQUEST_METHOD"].encode(), b" ", environ["PATH_INFO"].encode(), b" ", body]


def failing(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    raise RuntimeError("a bug in the application")


@pytest.fixture
def serve() -> Iterator[Callable[..., KeepAliveServer]]:
    started: list[tuple[KeepAliveServer, threading.Thread]] = []

    def start(app: Callable[..., Any] = echo) -> KeepAliveServer:
        server = KeepAliveServer(("127.0.0.1", 0), app)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread))
        return server

    yield start
    for server, thread in started:
        if not server.closing:
            server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def connect(server: KeepAliveServer) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)


def test_one_connection_carries_many_requests(serve: Callable[..., KeepAliveServer]) -> None:
    connection = connect(serve())
    sockets = []
    for n in range(3):
        connection.request("POST", "/a%20b", body=f"call {n}".encode())
        response = connection.getresponse()
        # The app's own Connection header is not passed on: the server keeps the connection.
        assert response.getheader("Connection") is None
        assert response.read() == f"POST /a b call {n}".encode()
        sockets.append(connection.sock)
    assert sockets[0] is not None and sockets.count(sockets[0]) == 3  # never reconnected
    connection.close()


def test_a_chunked_body_is_refused_saying_what_to_send(
    serve: Callable[..., KeepAliveServer],
) -> None:
    connection = connect(serve())
    connection.request("POST", "/", body=iter([b"part"]), encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 411
    assert response.read() == b"a request body needs a Content-Length\n"
    assert response.getheader("Connection") == "close"


@pytest.mark.parametrize("length", ["ten", "-5"])
def test_a_malformed_content_length_is_refused_saying_what_to_send(
    serve: Callable[..., KeepAliveServer], length: str
) -> None:
    connection = connect(serve())
    connection.putrequest("POST", "/")
    connection.putheader("Content-Length", length)
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 400
    assert response.read() == b"Content-Length must be a number of bytes\n"
    assert response.getheader("Connection") == "close"


def test_an_application_error_is_a_500_and_the_server_goes_on(
    serve: Callable[..., KeepAliveServer],
) -> None:
    connection = connect(serve(failing))
    for _ in range(2):
        connection.request("GET", "/")
        response = connection.getresponse()
        assert (response.status, response.read()) == (500, b"internal error\n")


def test_after_a_stop_a_kept_connection_is_answered_503_and_closed(
    serve: Callable[..., KeepAliveServer],
) -> None:
    server = serve()
    connection = connect(server)
    connection.request("GET", "/before")
    assert connection.getresponse().read() == b"GET /before "
    server.shutdown()
    connection.request("GET", "/after")
    response = connection.getresponse()
    assert (response.status, response.read()) == (503, b"stopping\n")
    assert response.getheader("Connection") == "close"
