"""An app's pod logs, paged by time so a follower sees every line once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib import apps, payloads
from chalicelib.auth import Principal
from chalicelib.contract import MAX_LOG_TAIL
from chalicelib.errors import BadRequest, ServiceUnavailable
from chalicelib.kube import Cluster
from chalicelib.records import iso


def read(
    principal: Principal,
    cluster: Cluster | None,
    app_name: str,
    *,
    since: str | None,
    tail: str | None,
    deployment_id: str | None,
) -> dict[str, Any]:
    """``GET /apps/{app}/logs``: lines after ``since``; ``next_since`` continues from the last."""
    app = apps.load(principal, app_name)
    after = _timestamp(since) if since else None
    count = payloads.integer(tail, "tail", 1, MAX_LOG_TAIL) if tail is not None else None
    if cluster is None:
        raise ServiceUnavailable("no cluster is configured for this control plane")
    lines = cluster.logs(app.name, since=after, tail=count, deployment_id=deployment_id)
    last = lines[-1].ts if lines else after
    return {
        "lines": [
            {
                "ts": _precise(line.ts),
                "pod": line.pod,
                "container": line.container,
                "message": line.message,
            }
            for line in lines
        ],
        "next_since": _precise(last) if last else None,
    }


def _timestamp(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest("since must be an RFC 3339 timestamp") from exc
    if moment.tzinfo is None:
        raise BadRequest("since must carry a time zone (e.g. Z)")
    return moment


def _precise(moment: datetime) -> str:
    """Microseconds kept: paging on a rounded timestamp would repeat or skip lines."""
    return iso(moment) or ""
