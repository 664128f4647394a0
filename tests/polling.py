"""Bounded polling: the one way tests wait for something that happens in the background."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import requests

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None], *, timeout: float = 10.0, what: str = "", interval: float = 0.05
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}")
        time.sleep(interval)


def serves(url: str, text: str, *, timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers exactly ``text`` (a rollout reaching its Service)."""
    seen: list[str] = []  # the latest answer, for the failure's message

    def answers() -> bool:
        try:
            seen[:] = [requests.get(url, timeout=5).text]
        except requests.RequestException as error:
            seen[:] = [str(error)]
        return seen[0] == text

    try:
        wait_for(answers, timeout=timeout, interval=0.5)
    except AssertionError:
        raise AssertionError(f"{url} answers {seen[0]!r}, not {text!r}") from None
