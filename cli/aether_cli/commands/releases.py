"""``aether config``, ``aether releases``, ``aether promote``, ``aether scale``,
``aether restart``, ``aether open``.

Each change is a new release of the app's current artifact, cut by the platform: nothing is
built or uploaded here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from aether_cli.assignments import config_name, parse_assignments, parse_names
from aether_cli.commands.apps import app_option, checked_app_name, short_digest, wait_options
from aether_cli.output import Output, format_option
from aether_cli.terminal import paint_status

if TYPE_CHECKING:
    from aether_cli.client import ApiClient


def _connect(app: str | None) -> tuple[ApiClient, str]:
    from pathlib import Path

    from aether_cli import config
    from aether_cli.client import connect

    settings = config.load_settings()
    client = connect(settings)
    return client, config.resolve_app_name(app, settings, Path.cwd())


def _release_line(release: dict[str, Any]) -> str:
    version = release.get("version")
    name = f"v{version}" if version is not None else str(release.get("deployment_id"))
    return f"{name} ({release.get('description') or 'deploy'})"


def _follow(
    client: ApiClient, out: Output, release: dict[str, Any], no_wait: bool, timeout: float
) -> dict[str, Any]:
    if no_wait:
        return release
    from aether_cli.rollout import follow

    return follow(client, release, timeout=timeout, out=out)


def _render_change(out: Output, app: str, release: dict[str, Any], no_wait: bool) -> None:
    status = release.get("status")
    if no_wait and status != "succeeded":
        out.line(
            f"{app}: release {_release_line(release)} is {status}; follow it with "
            f"`aether status {release.get('deployment_id')} --follow`"
        )
        return
    url = release.get("url")
    out.line(f"{app}: release {_release_line(release)} {status}" + (f": {url}" if url else ""))


# -- config -----------------------------------------------------------------------------------------


@click.group(invoke_without_command=True)
@app_option()
@click.option("--names-only", is_flag=True, help="Only the names, not the values.")
@format_option()
@click.pass_context
def config(ctx: click.Context, app: str | None, names_only: bool, fmt: str) -> None:
    """The app's config: NAME=VALUE lines (to the app's owner and admins only)."""
    if ctx.invoked_subcommand is not None:
        return
    out: Output = ctx.obj
    client, name = _connect(app)
    shown = client.get_config(name, values=not names_only)

    def text() -> None:
        names = shown.get("names") or []
        if not names:
            out.line(f"{name} has no config. Set some with `aether config set NAME=VALUE`.")
            return
        version = shown.get("version")
        out.line(f"{name} config" + (f" (v{version})" if version is not None else "") + ":")
        values = shown.get("values")
        for each in names:
            out.line(f"  {each}" if values is None else f"  {each}={values.get(each, '')}")

    out.result(shown, text)


@config.command("get")
@click.argument("name", callback=lambda _c, _p, v: config_name(v))
@app_option()
@format_option()
@click.pass_obj
def config_get(out: Output, name: str, app: str | None, fmt: str) -> None:
    """Print one config value (to the app's owner and admins only)."""
    client, app_name = _connect(app)
    found = client.get_config_value(app_name, name)
    out.result(found, lambda: out.line(str(found.get("value"))))


@config.command("set")
@click.argument("assignments", nargs=-1, required=True, callback=parse_assignments)
@app_option()
@wait_options("release")
@format_option()
@click.pass_obj
def config_set(
    out: Output,
    assignments: dict[str, str],
    app: str | None,
    no_wait: bool,
    timeout: float,
    fmt: str,
) -> None:
    """Set NAME=VALUE ...: a new release of the current artifact, nothing uploaded."""
    client, name = _connect(app)
    release = client.patch_config(name, set_values=assignments, unset=[])
    release = _follow(client, out, release, no_wait, timeout)
    out.result(release, lambda: _render_change(out, name, release, no_wait))


@config.command("unset")
@click.argument("names", nargs=-1, required=True, callback=parse_names)
@app_option()
@wait_options("release")
@format_option()
@click.pass_obj
def config_unset(
    out: Output, names: list[str], app: str | None, no_wait: bool, timeout: float, fmt: str
) -> None:
    """Remove NAME ...: a new release of the current artifact, nothing uploaded."""
    client, name = _connect(app)
    release = client.patch_config(name, set_values={}, unset=names)
    release = _follow(client, out, release, no_wait, timeout)
    out.result(release, lambda: _render_change(out, name, release, no_wait))


# -- releases, scale, restart, open ------------------------------------------------------------------


@click.command()
@app_option()
@click.option(
    "--limit", type=click.IntRange(1, 100), default=20, show_default=True, help="How many."
)
@format_option()
@click.pass_obj
def releases(out: Output, app: str | None, limit: int, fmt: str) -> None:
    """The app's releases, newest first: version, what changed, artifact, status, time, and
    whether each can still be rolled back to."""
    client, name = _connect(app)
    page = client.list_releases(name, limit=limit)
    listed = list(page.get("releases") or [])

    def text() -> None:
        if not listed:
            out.line(f"{name} has no releases yet. Deploy it with `aether deploy`.")
            return
        rows = [
            [
                f"v{r['version']}" if r.get("version") is not None else "-",
                r.get("description") or "deploy",
                short_digest(r.get("artifact_digest")),
                paint_status(r.get("status")),
                r.get("replicas"),
                _rollback_word(r.get("rollback_available")),
                r.get("created_by"),
                r.get("created_at"),
            ]
            for r in listed
        ]
        headers = ["VERSION", "CHANGE", "DIGEST", "STATUS", "REPLICAS", "ROLLBACK", "BY", "CREATED"]
        out.table(headers, rows)

    out.result({"app_name": name, **page}, text)


def _rollback_word(available: object) -> str:
    """``no`` for a release older than the ones the platform keeps (its artifact reclaimed);
    ``-`` when the control plane does not say."""
    if available is None:
        return "-"
    return "yes" if available else "no"


@click.command()
@click.option(
    "--to",
    "target",
    metavar="NAME",
    required=True,
    callback=checked_app_name,
    help="The app to run the artifact on, with its own config.",
)
@app_option(
    "The app whose running artifact is promoted. Default: config default_app, then package.json."
)
@wait_options("release")
@format_option()
@click.pass_obj
def promote(
    out: Output, target: str, app: str | None, no_wait: bool, timeout: float, fmt: str
) -> None:
    """Run --app's verified artifact on --to with --to's own config: no build, no upload."""
    client, source = _connect(app)
    release = client.promote(target, source)
    release = _follow(client, out, release, no_wait, timeout)
    out.result(release, lambda: _render_change(out, target, release, no_wait))


@click.command()
@click.argument("replicas", type=click.IntRange(0, None))
@app_option()
@wait_options("release")
@format_option()
@click.pass_obj
def scale(
    out: Output, replicas: int, app: str | None, no_wait: bool, timeout: float, fmt: str
) -> None:
    """Run the current release on REPLICAS pods (0 stops serving and keeps the app)."""
    from aether_cli.contract import MAX_REPLICAS

    if replicas > MAX_REPLICAS:
        raise click.BadParameter(f"at most {MAX_REPLICAS}", param_hint="'REPLICAS'")
    client, name = _connect(app)
    release = client.scale(name, replicas)
    release = _follow(client, out, release, no_wait, timeout)
    out.result(release, lambda: _render_change(out, name, release, no_wait))


@click.command()
@app_option()
@wait_options("restart")
@format_option()
@click.pass_obj
def restart(out: Output, app: str | None, no_wait: bool, timeout: float, fmt: str) -> None:
    """New pods for the current release, replaced one by one."""
    client, name = _connect(app)
    release = client.restart(name)
    release = _follow(client, out, release, no_wait, timeout)
    out.result(release, lambda: _render_change(out, name, release, no_wait))


@click.command("open")
@app_option()
@click.option("--no-browser", is_flag=True, help="Only print the URL.")
@format_option()
@click.pass_obj
def open_app(out: Output, app: str | None, no_browser: bool, fmt: str) -> None:
    """Print the app's URL (and open it in a browser, on a desktop's terminal)."""
    from aether_cli.commands.apps import serving_deployment
    from aether_cli.errors import AetherError

    client, name = _connect(app)
    serving = serving_deployment(client, name, client.get_app(name).get("latest_deployment"))
    url = (serving or {}).get("url")
    if not url:
        raise AetherError(
            f"{name} serves nothing yet; deploy it with `aether deploy`", code="not_found"
        )
    opened = False if no_browser or out.json else _open_in_browser(str(url))
    out.result({"app_name": name, "url": url, "opened": opened}, lambda: out.line(str(url)))


def _open_in_browser(url: str) -> bool:
    """Only where a graphical browser can appear: on a bare console, ``webbrowser`` would
    take over the terminal with a text browser."""
    import os
    import sys

    if not sys.stdout.isatty():
        return False
    desktop = sys.platform in ("darwin", "win32") or any(
        os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY")
    )
    if not desktop:
        return False
    import webbrowser

    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False
