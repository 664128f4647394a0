"""MinIO's webhook notifications through the relay (profile B), without Docker.

The bodies are what MinIO's webhook target sends (internal/event/target/webhook.go):
``{"EventName", "Key": "<bucket>/<unescaped key>", "Records": [event]}`` with the
record's object key query-escaped, and ``Authorization: Bearer <auth_token>``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
import requests

from chalicelib.contract import default_runtime
from infra.local.relay import MAX_WEBHOOK_BYTES, webhook_server
from tests.conftest import Api

TOKEN = "minio-webhook-token-for-tests"
DIGEST = "ab" * 32


def minio_event(
    bucket: str,
    key: str,
    event_name: str = "s3:ObjectCreated:Put",
    size: int = 1024,
) -> dict[str, Any]:
    record = {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "awsRegion": "",
        "eventTime": "2025-04-22T22:12:26.000Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "aether-local"},
        "requestParameters": {
            "principalId": "aether-local",
            "region": "",
            "sourceIPAddress": "127.0.0.1",
        },
        "responseElements": {
            "x-amz-id-2": "dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8",
            "x-amz-request-id": "1835A2B1F1C1A2B3",
            "x-minio-deployment-id": "4f3c2a1b-0000-4000-8000-000000000000",
            "x-minio-origin-endpoint": "http://127.0.0.1:9000",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "Config",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "aether-local"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": {
                "key": quote(key, safe=""),  # MinIO escapes the key: "/" is %2F
                "size": size,
                "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                "contentType": "application/octet-stream",
                "userMetadata": {"content-type": "application/octet-stream"},
                "sequencer": "1835A2B1F1D3E4F5",
            },
        },
        "source": {"host": "127.0.0.1", "port": "", "userAgent": "aws-cli/2"},
    }
    return {"EventName": event_name, "Key": f"{bucket}/{key}", "Records": [record]}


@dataclass
class Relay:
    url: str
    port: int
    delivered: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False

    def post(self, body: bytes | str, token: str | None = TOKEN) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.post(self.url, data=body, headers=headers, timeout=5)


@pytest.fixture(scope="module")
def running_relay() -> Iterator[Relay]:
    state = Relay(url="", port=0)

    def deliver(event: dict[str, Any]) -> None:
        if state.fail:
            raise RuntimeError("the handler is down")
        state.delivered.append(event)

    server = webhook_server(0, TOKEN, deliver)
    state.port = server.server_address[1]
    state.url = f"http://127.0.0.1:{state.port}/"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def relay(running_relay: Relay) -> Relay:
    running_relay.delivered.clear()
    running_relay.fail = False
    return running_relay


def raw_request(port: int, head: str, body: bytes = b"") -> str:
    """Send bytes MinIO (or an attacker) could send, and return the status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        sock.shutdown(socket.SHUT_WR)
        return sock.makefile("rb").readline().decode().strip()


def test_an_upload_event_is_delivered_as_s3_records(relay: Relay) -> None:
    event = minio_event("aether-local-artifacts", f"artifacts/web/{DIGEST}/app.tar.gz")
    response = relay.post(json.dumps(event))
    assert response.status_code == 200
    assert relay.delivered == [{"Records": event["Records"]}]


def test_every_object_created_variant_is_delivered(relay: Relay) -> None:
    for name in ("s3:ObjectCreated:Put", "s3:ObjectCreated:CompleteMultipartUpload"):
        event = minio_event("b", f"artifacts/web/{DIGEST}/app.tar.gz", event_name=name)
        assert relay.post(json.dumps(event)).status_code == 200
    assert len(relay.delivered) == 2


@pytest.mark.parametrize("token", [None, "", "wrong-token", TOKEN + "x", TOKEN[:-1]])
def test_a_wrong_or_missing_token_is_refused(relay: Relay, token: str | None) -> None:
    event = minio_event("b", f"artifacts/web/{DIGEST}/app.tar.gz")
    response = relay.post(json.dumps(event), token=token)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert relay.delivered == []


def test_a_body_that_is_not_json_is_a_bad_request(relay: Relay) -> None:
    response = relay.post(b"<xml>not json</xml>")
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
    assert relay.delivered == []


def test_an_oversized_body_is_refused_before_it_is_read(relay: Relay) -> None:
    head = (
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: {MAX_WEBHOOK_BYTES + 1}\r\n"
    )
    assert raw_request(relay.port, head).split()[1] == "413"
    assert relay.delivered == []


@pytest.mark.parametrize("length", ["-1", "abc", "1e3"])
def test_a_length_that_is_not_a_byte_count_is_refused(relay: Relay, length: str) -> None:
    """``Content-Length: -1`` used to make the relay read to EOF, past the size limit."""
    body = json.dumps(minio_event("b", f"artifacts/web/{DIGEST}/app.tar.gz")).encode()
    head = (
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: {length}\r\n"
    )
    assert raw_request(relay.port, head, body).split()[1] == "400"
    assert relay.delivered == []


@pytest.mark.parametrize(
    "event",
    [
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"},
        minio_event("b", f"artifacts/web/{DIGEST}/app.tar.gz", "s3:ObjectRemoved:Delete"),
        minio_event("b", f"artifacts/web/{DIGEST}/app.tar.gz", "s3:ObjectAccessed:Get"),
        {"EventName": "s3:ObjectCreated:Put", "Key": "b/k", "Records": "not a list"},
        {},
    ],
    ids=["test-event", "removed", "accessed", "malformed-records", "empty"],
)
def test_other_events_are_acknowledged_but_not_delivered(
    relay: Relay, event: dict[str, Any]
) -> None:
    assert relay.post(json.dumps(event)).status_code == 200
    assert relay.delivered == []


def test_a_failing_handler_answers_503_so_minio_retries(relay: Relay) -> None:
    relay.fail = True
    event = minio_event("b", f"artifacts/web/{DIGEST}/app.tar.gz")
    response = relay.post(json.dumps(event))
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"


def test_minio_liveness_probe_gets_an_answer(relay: Relay) -> None:
    """MinIO HEADs the endpoint at start-up; any HTTP answer marks the target online."""
    response = requests.head(relay.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert 200 <= response.status_code < 600


def test_a_minio_event_verifies_the_upload_through_the_real_handler(
    api: Api, control_plane: Any, unique_name: str
) -> None:
    """End to end: presigned PUT, then MinIO's escaped key through the relay to the handler."""
    assert api.post("/apps", {"name": unique_name}).status == 201
    data = os.urandom(1500)
    digest = hashlib.sha256(data).hexdigest()
    reply = api.post(
        "/artifacts",
        {"app_name": unique_name, "size_bytes": len(data), "runtime": default_runtime()},
        headers={"x-aether-artifact-digest": digest},
    )
    assert reply.status == 201, reply.body
    upload = reply.json["upload"]
    put = requests.put(upload["url"], data=data, headers=upload["headers"], timeout=10)
    assert put.status_code == 200

    server = webhook_server(0, TOKEN, lambda event: control_plane.artifact_uploaded(event, None))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        bucket = control_plane.get_settings().bucket
        event = minio_event(bucket, reply.json["key"], size=len(data))
        response = requests.post(
            f"http://127.0.0.1:{server.server_address[1]}/",
            data=json.dumps(event),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            timeout=30,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 200
    shown = api.get(f"/artifacts/{digest}").json
    assert shown["status"] == "verified", shown
