"""Deliver the upload events waiting on the embedded stack's queue, through the relay."""

from __future__ import annotations

import sys
from typing import Any

from infra.local.relay import drain_once


def deliver_pending_events(rounds: int = 3) -> int:
    """Run the relay until the queue is empty; returns how many events it delivered."""
    import boto3

    control_plane: Any = sys.modules["app"]
    sqs = boto3.client("sqs")
    delivered = 0
    for _ in range(rounds):
        count = drain_once(
            sqs, control_plane.upload_queue_url, _handler(control_plane), wait_seconds=0
        )
        delivered += count
        if count == 0:
            break
    return delivered


def _handler(control_plane: Any) -> Any:
    def deliver(event: dict[str, Any]) -> None:
        control_plane.artifact_uploaded(event, None)

    return deliver
