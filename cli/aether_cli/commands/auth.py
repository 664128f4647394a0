"""``aether login`` and ``aether logout``."""

from __future__ import annotations

import click

from aether_cli.output import Output


@click.command()
@click.option("--token", help="API token. Omit it to type it hidden, or pipe it on stdin.")
@click.option(
    "--api-url",
    metavar="URL",
    help="Control plane URL. Default: AETHER_API_URL, the config file, the last login.",
)
@click.pass_obj
def login(out: Output, token: str | None, api_url: str | None) -> None:
    """Check an API token with the control plane and remember it.

    The session is saved to ${XDG_CACHE_HOME:-~/.cache}/aether/session.json,
    readable only by you.
    """
    import os
    import sys
    from datetime import UTC, datetime

    from aether_cli import config, session
    from aether_cli.client import ApiClient
    from aether_cli.errors import ApiError, ConfigError, UsageError
    from aether_cli.output import stdin_is_tty

    settings = config.load_settings()
    url = (
        api_url
        or os.environ.get("AETHER_API_URL", "").strip()
        or settings.config.api_url
        or (settings.session.api_url if settings.session else None)
    )
    if not url:
        raise ConfigError(
            "no control plane URL",
            hint=f"pass --api-url URL or set api_url in {settings.config.path}",
        )
    url = config.normalize_url(url)
    if token is None:
        if stdin_is_tty():
            token = click.prompt(f"API token for {url}", hide_input=True, err=True)
        else:
            token = sys.stdin.readline()
    token = (token or "").strip()
    if not token:
        raise UsageError("no token given", hint="pass --token, type it at the prompt, or pipe it")

    client = ApiClient(url, token)
    try:
        identity = client.whoami()
    except ApiError as exc:
        if exc.status == 401:
            exc.hint = "check the token: it may be mistyped, expired or revoked"
        raise
    finally:
        client.close()
    session.save(
        settings.session_path,
        session.Session(
            api_url=url,
            token=token,
            subject=identity.get("subject"),
            role=identity.get("role"),
            token_id=identity.get("token_id"),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        ),
    )
    out.line(
        f"Logged in to {url} as {identity.get('subject', '?')} "
        f"(role {identity.get('role', '?')}); session saved to {settings.session_path}"
    )


@click.command()
@click.pass_obj
def logout(out: Output) -> None:
    """Forget the saved session (the token itself stays valid until revoked)."""
    import os

    from aether_cli import session

    path = session.session_path()
    if session.delete(path):
        out.line(f"Logged out; removed {path}")
    else:
        out.line("Not logged in; nothing to remove")
    if os.environ.get("AETHER_TOKEN"):
        out.line("Note: AETHER_TOKEN is still set in this environment")
