"""``chalice local`` as ``infra/local/api.py`` serves it: concurrent requests stay apart."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from infra.local.processes import Service
from tests.conftest import Api

CLIENTS = 6
REQUESTS_EACH = 8


def test_concurrent_requests_never_see_each_others_body_or_token(
    api: Api, local_api: Service
) -> None:
    """Each client registers apps with its own token; every app is the one it asked for.

    A stored token is read from DynamoDB before the body is, so the requests overlap while
    each one authenticates: an app registered under another client's name or owner would
    be a request that read another's body or headers.
    """
    run = uuid.uuid4().hex[:8]
    tokens = {}
    for client in range(CLIENTS):
        subject = f"gateway-{run}-{client}"
        tokens[subject] = api.post("/tokens", {"subject": subject}).json["token"]
    start = threading.Barrier(CLIENTS)

    def register_apps(subject: str) -> list[tuple[str, int, Any]]:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {tokens[subject]}"
        start.wait()
        answers = []
        for index in range(REQUESTS_EACH):
            name = f"{subject}-{index}"
            reply = session.post(
                f"{local_api.url}/apps",
                data=json.dumps({"name": name}),
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
            answers.append((name, reply.status_code, reply.json()))
        return answers

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = dict(zip(tokens, pool.map(register_apps, tokens), strict=True))

    for subject, answers in results.items():
        for name, status, body in answers:
            assert (status, body.get("name"), body.get("owner")) == (201, name, subject), body
