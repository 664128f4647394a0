"""Logs are JSON with the request's correlation keys, and carry no secret."""

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.observability import logger
from tests.conftest import ADMIN_TOKEN, Api


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every record the control plane logs, formatted by its own JSON formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


def test_request_logs_carry_request_id_app_and_digest(
    api: Api, unique_name: str, log_lines: io.StringIO
) -> None:
    api.get(f"/artifacts/{'a' * 64}")
    api.get(f"/apps/{unique_name}")
    requests = [r for r in records(log_lines) if r.get("message") == "request"]
    assert requests[0]["digest"] == "a" * 64
    assert requests[1]["app"] == unique_name
    assert all(r["request_id"] for r in requests)
    assert all(r["service"] == "aether" for r in requests)


def test_no_token_reaches_the_logs(api: Api, unique_name: str, log_lines: io.StringIO) -> None:
    issued = api.post("/tokens", {"subject": unique_name}).json["token"]
    api.as_(issued).get("/whoami")
    api.as_("aet_0123456789abcdef_not-a-real-secret").get("/whoami")
    written = log_lines.getvalue()
    assert records(log_lines)
    assert issued not in written
    assert ADMIN_TOKEN not in written
    assert "not-a-real-secret" not in written
