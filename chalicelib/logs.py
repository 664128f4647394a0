"""An app's pod logs, paged by time so a follower sees every line once."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from chalicelib import apps, payloads, releases
from chalicelib.auth import Principal
from chalicelib.contract import MAX_LOG_TAIL
from chalicelib.errors import BadRequest, NotFound, ServiceUnavailable
from chalicelib.kube import Cluster, LogLine
from chalicelib.manifests import release_job_name
from chalicelib.records import iso


def read(
    principal: Principal,
    cluster: Cluster | None,
    app_name: str,
    *,
    since: str | None,
    tail: str | None,
    deployment_id: str | None,
    release: str | None = None,
) -> dict[str, Any]:
    """``GET /apps/{app}/logs``: lines after ``since``; ``next_since`` continues from the last.

    ``release`` (``v4``) reads the output of that release's release command instead (with
    ``deployment`` too, only when that is the release's deployment: no query parameter
    can say the two exclude each other).
    """
    app = apps.load(principal, app_name)
    after = _timestamp(since) if since is not None else None
    count = payloads.query_integer(tail, "tail", 1, MAX_LOG_TAIL) if tail is not None else None
    if deployment_id is not None:
        payloads.issued_id(deployment_id, "deployment")
    job = None
    if release is not None:
        found = releases.by_version(app.name, payloads.release_version(release))
        if not found.release_command or found.skips_release_command:
            raise NotFound(f"release {releases.release_name(found)} ran no release command")
        if deployment_id not in (None, found.deployment_id):
            return page([], after)
        job = release_job_name(found.deployment_id)
    if cluster is None:
        raise ServiceUnavailable("no cluster is configured for this control plane")
    lines = cluster.logs(app.name, since=after, tail=count, deployment_id=deployment_id, job=job)
    return page(lines, after)


def job_output(
    cluster: Cluster, app_name: str, job: str, *, since: str | None, tail: str | None
) -> dict[str, Any]:
    """The output of one of the app's Jobs (a run), paged as the app's logs are."""
    after = _timestamp(since) if since is not None else None
    count = payloads.query_integer(tail, "tail", 1, MAX_LOG_TAIL) if tail is not None else None
    return page(cluster.logs(app_name, since=after, tail=count, job=job), after)


def page(lines: list[LogLine], after: datetime | None) -> dict[str, Any]:
    """Lines as the API answers them, and where the next read goes on from."""
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


_RFC_3339 = re.compile(
    r"(?P<date>\d{4}-\d\d-\d\d)[Tt ](?P<time>\d\d:\d\d):(?P<second>\d\d)"
    r"(?:\.(?P<fraction>\d+))?(?P<zone>[Zz]|[+-]\d\d:\d\d)?"
)


def _timestamp(value: str) -> datetime:
    """An RFC 3339 time in UTC: any fraction (cut to microseconds), a leap second as :59."""
    match = _RFC_3339.fullmatch(value)
    if match is None:
        raise BadRequest("since must be an RFC 3339 timestamp")
    if match["zone"] is None:
        raise BadRequest("since must carry a time zone (e.g. Z)")
    second = min(int(match["second"]), 59)
    fraction = (match["fraction"] or "").ljust(6, "0")[:6]
    zone = "+00:00" if match["zone"] in "Zz" else match["zone"]
    try:
        moment = datetime.fromisoformat(
            f"{match['date']}T{match['time']}:{second:02d}.{fraction}{zone}"
        )
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise BadRequest(f"since is not a valid time: {exc}") from exc


def _precise(moment: datetime) -> str:
    """Microseconds kept: paging on a rounded timestamp would repeat or skip lines."""
    return iso(moment) or ""
