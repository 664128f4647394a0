"""The one retry loop for HTTP calls: connection errors, timeouts and answers the caller
names as transient are tried again with exponential backoff and jitter."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import requests

from aether_cli.log import get_logger

# A server's Retry-After is honoured up to this many seconds: longer and the user is better
# served by an error now than a silent wait.
MAX_RETRY_AFTER = 10.0


def backoff_delay(attempt: int, base: float, cap: float = 8.0) -> float:
    """Exponential backoff with full jitter on top: base·2ⁿ plus up to base."""
    return float(min(cap, base * 2.0**attempt)) + random.uniform(0, base)  # noqa: S311 - jitter


def describe_connection_error(exc: BaseException) -> str:
    """A few words for why a connection failed, without urllib3's object reprs."""
    text = str(exc)
    for needle, words in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("Temporary failure in name resolution", "unknown host"),
        ("timed out", "timed out"),
        ("Connection reset", "connection reset"),
        ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted"),
        ("RemoteDisconnected", "connection closed by the server"),
    ):
        if needle in text:
            return words
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return type(exc).__name__


def send_with_retries(
    send: Callable[[], requests.Response],
    *,
    what: str,
    retries: int,
    backoff: float,
    transient: Callable[[requests.Response], bool],
    sleep: Callable[[float], None] = time.sleep,
) -> requests.Response:
    """Call ``send`` until it answers with a response ``transient`` rejects, at most
    ``retries`` more times. The last answer is returned whatever its status; the last
    ``requests.ConnectionError`` or ``Timeout`` propagates (the caller says what it means)."""
    attempt = 0
    while True:
        try:
            response = send()
        except (requests.ConnectionError, requests.Timeout) as exc:
            if attempt >= retries:
                raise
            _wait(attempt, retries, backoff, sleep, f"{what}: {describe_connection_error(exc)}")
        else:
            if attempt >= retries or not transient(response):
                return response
            retry_after = response.headers.get("Retry-After", "")
            floor = min(float(retry_after), MAX_RETRY_AFTER) if retry_after.isdigit() else 0.0
            _wait(attempt, retries, backoff, sleep, f"{what}: HTTP {response.status_code}", floor)
        attempt += 1


def _wait(
    attempt: int,
    retries: int,
    backoff: float,
    sleep: Callable[[float], None],
    why: str,
    floor: float = 0.0,
) -> None:
    delay = max(backoff_delay(attempt, backoff), floor)
    get_logger().warning("%s; retrying in %.1fs (%d/%d)", why, delay, attempt + 1, retries)
    sleep(delay)
