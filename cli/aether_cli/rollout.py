"""Following a deployment until it settles, printing each new event once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aether_cli.client import ApiClient
from aether_cli.errors import AetherError

TERMINAL_STATUSES = frozenset({"succeeded", "failed"})


class DeploymentFailed(AetherError):
    default_code = "deployment_failed"


class WaitTimeout(AetherError):
    default_code = "timeout"


def event_key(event: dict[str, Any]) -> tuple[str, str, str]:
    return (str(event.get("timestamp")), str(event.get("phase")), str(event.get("message")))


def follow(
    client: ApiClient,
    deployment: dict[str, Any],
    *,
    timeout: float,
    on_event: Callable[[dict[str, Any]], None],
    # A rollout usually finishes within seconds: look often at first, then back off.
    poll_interval: float = 0.25,
    max_interval: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll ``GET /deployments/{id}`` until succeeded (returned) or failed (raised)."""
    deployment_id = str(deployment["deployment_id"])
    seen: set[tuple[str, str, str]] = set()

    def report(current: dict[str, Any]) -> None:
        for event in current.get("events") or []:
            key = event_key(event)
            if key not in seen:
                seen.add(key)
                on_event(event)

    report(deployment)
    current = deployment
    deadline = clock() + timeout
    interval = poll_interval
    while current.get("status") not in TERMINAL_STATUSES:
        remaining = deadline - clock()
        if remaining <= 0:
            raise WaitTimeout(
                f"deployment {deployment_id} is still {current.get('status')} after {timeout:g}s",
                hint=f"check later with `aether status {deployment_id}`",
            )
        sleep(min(interval, remaining))
        current = client.get_deployment(deployment_id)
        report(current)
        interval = min(interval * 1.25, max_interval)
    if current.get("status") == "failed":
        events = current.get("events") or []
        last = events[-1].get("message") if events else None
        raise DeploymentFailed(
            f"deployment {deployment_id} failed" + (f": {last}" if last else ""),
            hint=f"see `aether logs --deployment {deployment_id}`",
        )
    return current


def log_event(event: dict[str, Any]) -> None:
    """Show a deployment event on stderr as it arrives."""
    from aether_cli.log import get_logger

    get_logger().info("  %s: %s", event.get("phase", "?"), event.get("message", ""))
