"""``aether hooks add|list|remove|deliveries``: event hooks, POSTs other systems react to."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from aether_cli.commands.apps import app_option
from aether_cli.contract import HOOK_EVENTS, ISSUED_ID_PATTERN, MAX_HOOK_URL_LENGTH
from aether_cli.output import Output, format_option


@click.group()
def hooks() -> None:
    """Send an app's events (uploads, releases, rollouts) to a URL, signed."""


def _check_url(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise click.BadParameter(f"{value!r} is not an absolute https:// URL")
    if len(value) > MAX_HOOK_URL_LENGTH:
        raise click.BadParameter(f"longer than {MAX_HOOK_URL_LENGTH} characters")
    return value


def _check_id(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not re.fullmatch(ISSUED_ID_PATTERN, value):
        raise click.BadParameter(f"{value!r} is not a hook id (`aether hooks list` shows them)")
    return value


hook_id_argument = click.argument("hook_id", metavar="ID", callback=_check_id)


@hooks.command("add")
@click.argument("url", callback=_check_url)
@click.option(
    "--event",
    "events",
    multiple=True,
    type=click.Choice(HOOK_EVENTS),
    help="An event to send (repeat for more). Default: every event, later ones too.",
)
@app_option("App whose events to send. Default: config default_app, then package.json.")
@click.option("--global", "every_app", is_flag=True, help="Every app's events (admins).")
@format_option()
@click.pass_obj
def add_hook(
    out: Output, url: str, events: tuple[str, ...], app: str | None, every_app: bool, fmt: str
) -> None:
    """Subscribe URL; prints the signing secret, shown this once and never again."""
    from aether_cli import config
    from aether_cli.client import connect
    from aether_cli.errors import UsageError

    if every_app and app:
        raise UsageError("give --app or --global, not both")
    settings = config.load_settings()
    name = None if every_app else config.resolve_app_name(app, settings, Path.cwd())
    created = connect(settings).add_hook(url, app=name, events=list(events) or None)

    def text() -> None:
        out.line(str(created.get("secret")))
        from aether_cli.log import get_logger

        get_logger().info(
            "hook %s sends %s of %s to %s; the secret above signs every delivery and is "
            "shown only now",
            created.get("hook_id"),
            ", ".join(created.get("events") or ["every event"]),
            created.get("app_name") or "every app",
            created.get("url"),
        )

    out.result(created, text)


@hooks.command("list")
@app_option("Only this app's. Default: every hook you may see.")
@format_option()
@click.pass_obj
def list_hooks(out: Output, app: str | None, fmt: str) -> None:
    """List hooks (never their secrets)."""
    from aether_cli.client import connect

    found = connect().list_hooks(app)

    def text() -> None:
        if not found:
            out.line("No hooks. Add one with `aether hooks add URL`.")
            return
        rows = [
            [
                hook.get("hook_id"),
                hook.get("app_name") or "(every app)",
                ",".join(hook.get("events") or ["*"]),
                hook.get("url"),
                hook.get("created_at"),
            ]
            for hook in found
        ]
        out.table(["HOOK ID", "APP", "EVENTS", "URL", "CREATED"], rows)

    out.result({"hooks": found}, text)


@hooks.command("remove")
@hook_id_argument
@format_option()
@click.pass_obj
def remove_hook(out: Output, hook_id: str, fmt: str) -> None:
    """Remove a hook: nothing more is sent to it."""
    from aether_cli.client import connect

    removed = connect().remove_hook(hook_id)
    out.result(removed, lambda: out.line(f"Removed hook {hook_id} ({removed.get('url')})"))


@hooks.command("deliveries")
@hook_id_argument
@click.option(
    "--limit",
    type=click.IntRange(1, 100),
    default=20,
    show_default=True,
    help="How many of the newest deliveries.",
)
@format_option()
@click.pass_obj
def hook_deliveries(out: Output, hook_id: str, limit: int, fmt: str) -> None:
    """Recent deliveries of a hook, attempt by attempt: status code, latency, time."""
    from aether_cli.client import connect

    found = connect().hook_deliveries(hook_id, limit=limit)

    def text() -> None:
        if not found:
            out.line(f"Nothing was sent to hook {hook_id} yet.")
            return
        out.table(
            ["TIME", "EVENT", "EVENT ID", "DELIVERY", "CODE", "LATENCY", "ERROR"],
            [row for delivery in found for row in _attempt_rows(delivery)],
        )

    out.result({"hook_id": hook_id, "deliveries": found}, text)


def _attempt_rows(delivery: dict[str, Any]) -> list[list[object]]:
    """One row per attempt, newest first; the delivery's state on its last attempt."""
    attempts = list(delivery.get("attempts") or [])
    rows: list[list[object]] = []
    for index, attempt in enumerate(attempts):
        last = index == len(attempts) - 1
        rows.append(
            [
                attempt.get("at"),
                delivery.get("event"),
                delivery.get("event_id"),
                delivery.get("status") if last else "retried",
                attempt.get("status_code"),
                f"{attempt.get('latency_ms')} ms",
                attempt.get("error"),
            ]
        )
    return list(reversed(rows))
