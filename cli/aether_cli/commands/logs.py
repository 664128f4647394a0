"""``aether logs``: recent lines of an app's pods, or a live follow."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from aether_cli.commands.apps import app_option
from aether_cli.output import Output, format_option

_SEEN_LIMIT = 5000


def parse_since(value: str, now: datetime | None = None) -> str:
    """``10m``, ``1h30m``, ``2d`` or an RFC 3339 time → an RFC 3339 UTC timestamp."""
    from aether_cli import durations

    value = value.strip()
    ago = durations.seconds(value)
    if ago is not None:
        return format_rfc3339((now or datetime.now(UTC)) - timedelta(seconds=ago))
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither a duration (30s, 10m, 1h30m, 2d) nor an RFC 3339 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a time without offset is the user's local time
    return format_rfc3339(moment)


def format_rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _since_option(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    return None if value is None else parse_since(value)


def line_key(line: dict[str, Any]) -> tuple[str, str, str, str]:
    return (
        str(line.get("ts")),
        str(line.get("pod")),
        str(line.get("container")),
        str(line.get("message")),
    )


class LineDeduplicator:
    """Drops lines already shown: pages of a follow may overlap at their boundary."""

    def __init__(self, limit: int = _SEEN_LIMIT) -> None:
        from collections import deque

        self._order: deque[tuple[str, str, str, str]] = deque()
        self._seen: set[tuple[str, str, str, str]] = set()
        self._limit = limit

    def fresh(self, line: dict[str, Any]) -> bool:
        key = line_key(line)
        if key in self._seen:
            return False
        self._seen.add(key)
        self._order.append(key)
        if len(self._order) > self._limit:
            self._seen.discard(self._order.popleft())
        return True


def _release_option(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"v?[1-9][0-9]{0,8}", value):
        raise click.BadParameter(f"{value!r} is not a release (v4, or 4)")
    return value


@click.command()
@app_option()
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option(
    "--since",
    metavar="DURATION|TIME",
    callback=_since_option,
    help="Start from this long ago (30s, 10m, 1h30m, 2d) or from an RFC 3339 time.",
)
@click.option("--tail", type=click.IntRange(min=0), metavar="N", help="Only the last N lines.")
@click.option("--deployment", metavar="ID", help="Only the pods of this deployment.")
@click.option(
    "--release",
    metavar="vN",
    callback=_release_option,
    help="The output of release vN's release command instead.",
)
@click.option("--run", "run_id", metavar="ID", help="The output of this one-off run instead.")
@click.option("--poll-interval", type=click.FloatRange(min=0.05), default=2.0, hidden=True)
@format_option("Lines as text, or one JSON object per line (JSON Lines).")
@click.pass_obj
def logs(
    out: Output,
    app: str | None,
    follow: bool,
    since: str | None,
    tail: int | None,
    deployment: str | None,
    release: str | None,
    run_id: str | None,
    poll_interval: float,
    fmt: str,
) -> None:
    """Show the app's logs; --follow keeps streaming them.

    --release vN shows what release vN's release command printed; --run ID a run's output.
    """
    import contextlib
    from pathlib import Path

    from aether_cli import config
    from aether_cli.client import connect

    settings = config.load_settings()
    client = connect(settings)
    name = config.resolve_app_name(app, settings, Path.cwd())
    dedupe = LineDeduplicator()

    def show(line: dict[str, Any]) -> None:
        if out.json:
            out.record(line)
        else:
            where = "/".join(str(p) for p in (line.get("pod"), line.get("container")) if p)
            click.echo(f"{line.get('ts', '')} {where} {line.get('message', '')}")

    if sum(given is not None for given in (deployment, release, run_id)) > 1:
        raise click.UsageError("give at most one of --deployment, --release and --run")

    def read(since: str | None, tail: int | None) -> dict[str, Any]:
        if run_id is not None:
            return client.run_logs(name, run_id, since=since)
        return client.logs(name, since=since, tail=tail, deployment=deployment, release=release)

    if not follow:
        page = read(since, tail)
        for line in page.get("lines") or []:
            show(line)
        return

    from aether_cli.interrupts import deferred

    # Ctrl-C is how a follow ends: a normal exit, not an error.
    with deferred() as interrupt, contextlib.suppress(KeyboardInterrupt):
        page = read(since, tail)
        resume = since
        while True:
            lines = page.get("lines") or []
            for line in lines:
                if dedupe.fresh(line):
                    show(line)
            # next_since is the server's resume point; without one, resume from the
            # newest line seen (the deduplicator absorbs the overlap). Until there is
            # one, each page is still only the last --tail lines, never the history.
            resume = page.get("next_since") or (str(lines[-1].get("ts")) if lines else resume)
            interrupt.wait(poll_interval)
            interrupt.check()
            page = read(resume, tail if resume is None else None)
            interrupt.check()
