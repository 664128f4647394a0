"""``aether list``, ``aether status``, ``aether rollback`` and ``aether apps create|destroy``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from aether_cli.output import Output, format_option
from aether_cli.terminal import paint_status

if TYPE_CHECKING:
    from aether_cli.client import ApiClient

F = TypeVar("F", bound=Callable[..., Any])


def checked_app_name(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A click callback: an app name option's value, refused unless it is a valid name."""
    from aether_cli.config import APP_NAME_RULE, is_app_name

    if value is not None and not is_app_name(value):
        raise click.BadParameter(f"{value!r} is not a valid app name ({APP_NAME_RULE})")
    return value


def app_option(
    help_text: str = "App name. Default: config default_app, then package.json.",
) -> Callable[[F], F]:
    return click.option("--app", metavar="NAME", callback=checked_app_name, help=help_text)


def wait_options(what: str) -> Callable[[F], F]:
    """``--no-wait`` and ``--timeout``, for the commands that start a rollout."""

    def decorate(command: F) -> F:
        command = click.option(
            "--timeout",
            type=click.FloatRange(min=1),
            metavar="SECONDS",
            default=300,
            show_default=True,
            help="Seconds to wait for the rollout before giving up (exit 20).",
        )(command)
        return click.option("--no-wait", is_flag=True, help=f"Return once the {what} is accepted.")(
            command
        )

    return decorate


def _app_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    from aether_cli.config import APP_NAME_RULE, is_app_name

    if not is_app_name(value):
        raise click.BadParameter(f"{value!r} is not a valid app name ({APP_NAME_RULE})")
    return value


@click.group()
def apps() -> None:
    """Register an app, or destroy one with everything it holds."""


@apps.command("create")
@click.argument("name", callback=_app_name)
@click.option(
    "--require-signature",
    is_flag=True,
    help="Only deploy artifacts signed by one of the app's public keys.",
)
@format_option()
@click.pass_obj
def create_app(out: Output, name: str, require_signature: bool, fmt: str) -> None:
    """Register the app NAME (`aether deploy` registers one it does not find, too)."""
    from aether_cli.client import connect

    created = connect().create_app(name, require_signature=require_signature)
    out.result(created, lambda: out.line(f"Created app {name} (owner {created.get('owner')})"))


@apps.command("destroy")
@click.argument("name", callback=_app_name)
@click.option(
    "--confirm",
    metavar="NAME",
    help="The app's name again: nothing is destroyed without it.",
)
@format_option()
@click.pass_obj
def destroy_app(out: Output, name: str, confirm: str | None, fmt: str) -> None:
    """Destroy the app NAME: its pods, Secrets, releases, config, keys and artifacts.

    Nothing of it can be restored; the name is free again once this succeeds. Run it
    again to finish a teardown that was cut short.
    """
    from aether_cli.errors import UsageError

    if confirm != name:
        # Checked before anything is sent: a refusal changes nothing.
        said = "without --confirm" if confirm is None else f"with --confirm {confirm}"
        raise UsageError(f"refusing to destroy {name} {said}; confirm with --confirm {name}")
    from aether_cli.client import connect

    removed = connect().destroy_app(name)

    def text() -> None:
        counts = removed.get("removed") or {}
        listed = ", ".join(f"{counts.get(what, 0)} {what.replace('_', ' ')}" for what in counts)
        out.line(f"Destroyed {name} ({listed}); the name is free again")

    out.result(removed, text)


@click.command("list")
@format_option()
@click.pass_obj
def list_apps(out: Output, fmt: str) -> None:
    """List apps: what serves each now, and its latest deployment."""
    from aether_cli.client import connect

    client = connect()
    apps = [
        {**app, "serving": serving_deployment(client, app["name"], app.get("latest_deployment"))}
        for app in client.list_apps()
    ]

    def text() -> None:
        if not apps:
            out.line("No apps yet. Deploy one with `aether deploy`.")
            return
        rows = []
        for app in apps:
            latest = app.get("latest_deployment") or {}
            serving = app["serving"] or {}
            rows.append(
                [
                    app.get("name"),
                    serving.get("deployment_id"),
                    short_digest(serving.get("artifact_digest")),
                    serving.get("url"),
                    latest_word(latest, serving),
                    latest.get("created_at") or app.get("created_at"),
                    app.get("preview_of") or "",
                    app.get("expires_at") or "",
                ]
            )
        out.table(["APP", "SERVING", "DIGEST", "URL", "LATEST", "UPDATED", "BASE", "EXPIRES"], rows)

    out.result({"apps": apps}, text)


# Pages of history read to find what serves (well inside the API's page limit).
_HISTORY_PAGE = 50
_HISTORY_PAGES = 4


def serving_deployment(
    client: ApiClient, app: str, latest: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The deployment that serves ``app`` now: its newest that succeeded.

    A rollout that fails or is still going leaves the previous release running (new pods
    replace old ones only once ready), so that one is found in the history.
    """
    if latest is None:
        return None
    if latest.get("status") == "succeeded":
        return latest
    cursor = None
    for _ in range(_HISTORY_PAGES):
        page = client.list_deployments(app, limit=_HISTORY_PAGE, cursor=cursor)
        for deployment in page.get("deployments") or []:
            if deployment.get("status") == "succeeded":
                return dict(deployment)
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return None


def latest_word(latest: dict[str, Any], serving: dict[str, Any]) -> str | None:
    """The latest deployment's status, and its id when it is not the one serving."""
    if not latest:
        return None
    word = paint_status(latest.get("status"))
    if latest.get("deployment_id") == serving.get("deployment_id"):
        return word
    return f"{word} {latest.get('deployment_id')}"


@click.command()
@click.argument("deployment_id", required=False)
@app_option()
@click.option(
    "--follow", "-f", "follow_rollout", is_flag=True, help="Wait until the rollout settles."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    default=300,
    show_default=True,
    help="With --follow: seconds to wait before giving up (exit 20).",
)
@format_option()
@click.pass_obj
def status(
    out: Output,
    deployment_id: str | None,
    app: str | None,
    follow_rollout: bool,
    timeout: float,
    fmt: str,
) -> None:
    """Show a deployment and its events (default: the app's latest)."""
    from pathlib import Path

    from aether_cli import config
    from aether_cli.client import connect
    from aether_cli.errors import AetherError

    settings = config.load_settings()
    client = connect(settings)
    if deployment_id:
        deployment = client.get_deployment(deployment_id)
    else:
        name = config.resolve_app_name(app, settings, Path.cwd())
        page = client.list_deployments(name, limit=1)
        found = page.get("deployments") or []
        if not found:
            raise AetherError(f"app {name!r} has no deployments yet", code="not_found")
        # History entries carry no events; the deployment itself does.
        deployment = client.get_deployment(str(found[0]["deployment_id"]))
    if follow_rollout:
        from aether_cli.rollout import follow

        deployment = follow(client, deployment, timeout=timeout, out=out)
    app_name = str(deployment.get("app_name"))
    latest = client.get_app(app_name).get("latest_deployment")
    serving = serving_deployment(client, app_name, latest)

    def text() -> None:
        render_deployment(out, deployment)
        render_serving(out, deployment, serving)

    out.result({**deployment, "serving": serving}, text)


@click.command()
@click.argument("target", required=False, metavar="[vN | DEPLOYMENT_ID]")
@click.option(
    "--to",
    "to",
    metavar="DEPLOYMENT_ID",
    help="Deployment to return to. Default: the previous one.",
)
@app_option()
@wait_options("rollback")
@format_option()
@click.pass_obj
def rollback(
    out: Output,
    target: str | None,
    to: str | None,
    app: str | None,
    no_wait: bool,
    timeout: float,
    fmt: str,
) -> None:
    """Release an earlier release's artifact and config again, without uploading anything.

    TARGET is a release version (v4) or a deployment id; default: the newest earlier
    success of another artifact.
    """
    import re
    from pathlib import Path

    from aether_cli import config
    from aether_cli.client import connect
    from aether_cli.log import get_logger
    from aether_cli.rollout import follow

    if target is not None and to is not None:
        raise click.UsageError("give the target or --to, not both")
    version = None
    if target is not None and re.fullmatch(r"[vV]?[1-9][0-9]{0,8}", target):
        version = int(target.lstrip("vV"))
    elif target is not None:
        to = target
    settings = config.load_settings()
    client = connect(settings)
    name = config.resolve_app_name(app, settings, Path.cwd())
    deployment = client.rollback(name, to, version=version)
    deployment_id = deployment.get("deployment_id")
    get_logger().info(
        "rolling %s back to artifact %s (deployment %s)",
        name,
        short_digest(deployment.get("artifact_digest")),
        deployment_id,
    )
    if not no_wait:
        deployment = follow(client, deployment, timeout=timeout, out=out)

    def text() -> None:
        if no_wait:
            out.line(
                f"Rollback of {name} is {deployment.get('status')}; "
                f"follow it with `aether status {deployment_id} --follow`"
            )
        # The events were shown while following (or are one `aether status` away): not again.
        render_deployment(out, deployment, events=False)

    out.result(deployment, text)


def render_deployment(out: Output, deployment: dict[str, Any], *, events: bool = True) -> None:
    rows = [
        ("deployment", deployment.get("deployment_id")),
        ("app", deployment.get("app_name")),
        ("status", deployment.get("status")),
        ("digest", deployment.get("artifact_digest")),
        ("url", deployment.get("url")),
        ("created", deployment.get("created_at")),
    ]
    for label, value in rows:
        shown = paint_status(value) if label == "status" else ("-" if value is None else value)
        out.line(f"{label:<11} {shown}")
    shown = (deployment.get("events") or []) if events else []
    if shown:
        out.line("events:")
        for event in shown:
            out.line(
                f"  {event.get('timestamp', '')}  {event.get('phase', '')}: {event.get('message', '')}"
            )


def render_serving(out: Output, deployment: dict[str, Any], serving: dict[str, Any] | None) -> None:
    """What answers at the app's URL now, when it is not the deployment shown."""
    if serving is None:
        out.line("serving     nothing: no deployment of this app has succeeded yet")
    elif serving.get("deployment_id") != deployment.get("deployment_id"):
        out.line(
            f"serving     {serving.get('deployment_id')} "
            f"(artifact {short_digest(serving.get('artifact_digest'))}) at {serving.get('url')}"
        )


def short_digest(digest: object) -> str | None:
    return digest[:12] if isinstance(digest, str) else None
