"""Receivers on loopback ports and the hooks' queue consumer, as the embedded stack's relay
runs it (``infra.local.relay``): each batch to the app's own ``on_sqs_message`` handler."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conftest import Api


@dataclass(frozen=True)
class Delivery:
    """One POST a receiver got, as it got it."""

    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.body)
        return decoded


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST; it answers the statuses in
    ``answers`` first, then 200; with ``hang`` it never answers at all."""

    def __init__(self, answers: list[int] | None = None, hang: bool = False) -> None:
        self.deliveries: list[Delivery] = []
        self._answers = list(answers or [])
        self._hang = hang
        self._closing = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.deliveries.append(Delivery(dict(self.headers.items()), body))
                    status = receiver._answers.pop(0) if receiver._answers else 200
                if receiver._hang:
                    receiver._closing.wait(60)
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/events"

    def of_type(self, event: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.headers.get("X-Aether-Event") == event]

    def wait_for(self, event: str, count: int = 1, timeout: float = 30.0) -> list[Delivery]:
        """The deliveries of ``event`` once there are ``count``; bounded only so that a
        broken test stops."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of_type(event)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"{event} x{count} never arrived; got {self.deliveries}")

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(answers: list[int] | None = None, hang: bool = False) -> Receiver:
        made.append(Receiver(answers, hang))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture(scope="session")
def hook_consumer(control_plane: Any) -> Iterator[None]:
    """The relay's poller on the hooks' queue for the rest of the session."""
    import boto3

    from infra.local.relay import poll_hooks_forever

    app_module: Any = sys.modules["app"]
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=app_module.get_settings().hooks.queue_name)["QueueUrl"]

    def handler(event: dict[str, Any]) -> None:
        app_module.deliver_hooks(event, None)

    stop = threading.Event()
    poller = threading.Thread(target=poll_hooks_forever, args=(sqs, url, handler, stop))
    poller.start()
    yield
    stop.set()
    poller.join(timeout=10)


def add_hook(api: Api, url: str, app_name: str | None, **body: Any) -> dict[str, Any]:
    sent = {"url": url, **body}
    if app_name is not None:
        sent["app_name"] = app_name
    reply = api.post("/hooks", sent)
    assert reply.status == 201, reply.body
    return dict(reply.json)


def deliveries(api: Api, hook_id: str) -> list[dict[str, Any]]:
    reply = api.get(f"/hooks/{hook_id}/deliveries")
    assert reply.status == 200, reply.body
    return list(reply.json["deliveries"])


def settled(api: Api, hook_id: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The subscription's deliveries once none is pending (bounded only against a hang)."""
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = deliveries(api, hook_id)
        if found and all(d["status"] != "pending" for d in found):
            return found
        time.sleep(0.1)
    raise AssertionError(f"deliveries never settled: {found}")
