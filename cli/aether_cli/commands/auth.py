"""``aether login``, ``aether whoami`` and ``aether logout``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from aether_cli.output import Output, format_option

if TYPE_CHECKING:
    from aether_cli import config as config_module


@click.command()
@click.option("--token", help="API token. Omit it to type it hidden, or pipe it on stdin.")
@click.option(
    "--api-url",
    metavar="URL",
    help="Control plane URL. Default: AETHER_API_URL, the config file, the last login.",
)
@click.option(
    "--sso",
    is_flag=True,
    help="Sign in with the identity provider even when stdin is not a terminal.",
)
@click.option(
    "--device",
    is_flag=True,
    help="Sign in on another device with a code (no browser here); implies --sso.",
)
@click.pass_obj
def login(out: Output, token: str | None, api_url: str | None, sso: bool, device: bool) -> None:
    """Sign in with the identity provider, or check an API token, and remember it.

    At a terminal, and with --sso or --device, the CLI signs in with the identity
    provider the control plane names: in the browser (Authorization Code with PKCE
    through a loopback redirect), or with a code to enter on any device when no
    browser can be opened here. The short-lived access token is refreshed before it
    expires. With --token, or a token piped on stdin, an API token is checked and kept.
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
    if token is None and (sso or device or stdin_is_tty()):
        from aether_cli import login as sign_in

        provider_config = sign_in.auth_config(url)
        if provider_config is not None:
            _sign_in(out, settings, url, provider_config, device)
            return
        if sso or device:
            raise ConfigError(
                f"{url} names no identity provider", hint="use `aether login --token`"
            )
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
    if settings.credentials_from == "environment" and settings.token != token:
        from aether_cli.log import get_logger

        get_logger().warning(
            "AETHER_TOKEN is set in this environment and overrides this login "
            "until you unset it (`unset AETHER_TOKEN`)"
        )


def _sign_in(
    out: Output,
    settings: config_module.Settings,
    url: str,
    provider_config: dict[str, object],
    device: bool,
) -> None:
    import os

    from aether_cli import login as sign_in
    from aether_cli import session
    from aether_cli.client import ApiClient
    from aether_cli.log import get_logger

    provider = sign_in.discover(provider_config)
    say = get_logger().warning
    if device or not sign_in.can_open_browser(os.environ):
        tokens = sign_in.device_sign_in(provider, say)
    else:
        tokens = sign_in.browser_sign_in(provider, say)
    client = ApiClient(url, tokens.access_token)
    try:
        identity = client.whoami()
    finally:
        client.close()
    session.save(settings.session_path, sign_in.session_for(url, provider, tokens, identity))
    out.line(
        f"Signed in to {url} as {identity.get('subject', '?')} "
        f"(role {identity.get('role', '?')}) through {provider.issuer}; "
        f"session saved to {settings.session_path}"
    )
    if settings.credentials_from == "environment":
        get_logger().warning(
            "AETHER_TOKEN is set in this environment and overrides this login "
            "until you unset it (`unset AETHER_TOKEN`)"
        )


@click.command()
@format_option()
@click.pass_obj
def whoami(out: Output, fmt: str) -> None:
    """Say who the control plane takes you for, and where the token comes from."""
    from aether_cli import config
    from aether_cli.client import connect

    settings = config.load_settings()
    identity = connect(settings).whoami()
    source = {
        "environment": "AETHER_TOKEN",
        "session": f"the login saved in {settings.session_path}",
    }.get(settings.credentials_from or "", "?")
    result = {
        "subject": identity.get("subject"),
        "role": identity.get("role"),
        "token_id": identity.get("token_id"),
        "issuer": identity.get("issuer"),
        "expires_at": identity.get("expires_at"),
        "api_url": settings.api_url,
        "credentials_from": settings.credentials_from,
    }

    def text() -> None:
        out.line(
            f"{result['subject']} (role {result['role']}, token {result['token_id']}) "
            f"at {result['api_url']}"
        )
        if result["issuer"]:
            out.line(f"signed in through {result['issuer']}")
        out.line(f"expires {result['expires_at'] or 'never'}")
        out.line(f"token from {source}")

    out.result(result, text)


@click.command()
@click.pass_obj
def logout(out: Output) -> None:
    """Forget the saved session; a sign-in's refresh token is revoked with the provider.

    An API token stays valid until revoked (`aether tokens revoke`); an access token
    already issued lasts until it expires, minutes at most.
    """
    import os

    from aether_cli import session

    path = session.session_path()
    saved = session.load(path)
    if saved is not None and saved.refresh_token and saved.issuer:
        from aether_cli import login as sign_in

        if sign_in.revoke(sign_in.provider_of(saved), saved.refresh_token, "refresh_token"):
            out.line(f"Revoked the refresh token with {saved.issuer}")
    if session.delete(path):
        out.line(f"Logged out; removed {path}")
    else:
        out.line("Not logged in; nothing to remove")
    if os.environ.get("AETHER_TOKEN"):
        out.line("Note: AETHER_TOKEN is still set in this environment")
