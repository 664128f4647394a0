"""Deliver the upload events waiting on the embedded stack's queue, through the relay."""

from __future__ import annotations

import sys
from typing import Any

from infra.local.relay import drain_once

# A receive takes at most 10 messages; uploads that no test drained pile up on the
# suite's shared queue, so one call may have to take several hundred.
MAX_RECEIVES = 100


def deliver_pending_events() -> int:
    """Run the relay until the queue answers empty; returns how many events it delivered.

    Empty means no message came back: a receive of only S3 test events, or of deliveries
    that failed (they return after the visibility timeout), delivers none and is not the end.
    """
    import boto3

    control_plane: Any = sys.modules["app"]
    sqs = boto3.client("sqs")
    delivered = 0
    for _ in range(MAX_RECEIVES):
        drained = drain_once(
            sqs, control_plane.upload_queue_url, _handler(control_plane), wait_seconds=0
        )
        delivered += drained.delivered
        if drained.received == 0:
            break
    return delivered


def _handler(control_plane: Any) -> Any:
    def deliver(event: dict[str, Any]) -> None:
        control_plane.artifact_uploaded(event, None)

    return deliver
