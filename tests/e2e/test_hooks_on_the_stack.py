"""On the embedded stack: an upload's events reach a receiver on this machine, through the
hooks' queue on the records server and the relay that polls it for the app's handler."""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

import requests
from aether_cli.hook_signatures import verify

from infra.local.private import PrivateStack
from tests.hooks.conftest import Receiver


def call(stack: PrivateStack, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {stack.env['AETHER_TOKEN']}", **kwargs.pop("headers", {})}
    return requests.request(method, stack.api_url + path, headers=headers, timeout=30, **kwargs)


def test_an_upload_on_the_stack_is_announced_to_a_loopback_receiver(stack: PrivateStack) -> None:
    receiver = Receiver()
    try:
        assert call(stack, "POST", "/apps", json={"name": "hooked"}).status_code == 201
        hook = call(
            stack,
            "POST",
            "/hooks",
            json={"url": receiver.url, "app_name": "hooked", "events": ["artifact.verified"]},
        )
        assert hook.status_code == 201, hook.text
        data = os.urandom(4096)
        digest = hashlib.sha256(data).hexdigest()
        ticket = call(
            stack,
            "POST",
            "/artifacts",
            json={"app_name": "hooked", "size_bytes": len(data)},
            headers={"x-aether-artifact-digest": digest},
        ).json()
        upload = ticket["upload"]
        assert requests.put(upload["url"], data=data, headers=upload["headers"], timeout=30).ok
        (arrived,) = receiver.wait_for("artifact.verified", timeout=60)
        verify(
            hook.json()["secret"],
            arrived.body,
            arrived.headers.get("X-Aether-Timestamp"),
            arrived.headers.get("X-Aether-Signature"),
        )
        assert (arrived.event["app"], arrived.event["digest"]) == ("hooked", digest)
        deadline = time.monotonic() + 30
        shown: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not shown:
            shown = call(stack, "GET", f"/hooks/{hook.json()['hook_id']}/deliveries").json()[
                "deliveries"
            ]
            shown = [d for d in shown if d["status"] == "delivered"]
            time.sleep(0.1)
        assert [a["status_code"] for a in shown[0]["attempts"]] == [200]
    finally:
        receiver.close()
