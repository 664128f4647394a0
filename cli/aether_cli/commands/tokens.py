"""``aether tokens create|list|rotate|revoke|pull``: API tokens for CI and machines."""

from __future__ import annotations

from typing import Any

import click

from aether_cli.contract import DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS, TOKEN_ROLES
from aether_cli.output import Output, format_option

STORED_TOKEN_PREFIX = "aet_"  # noqa: S105  (aet_<token id>_<secret>, as POST /tokens issues)


@click.group()
def tokens() -> None:
    """Issue, list, rotate and revoke API tokens (admins: anyone's; developers: their own)."""


@tokens.command("create")
@click.option("--subject", metavar="NAME", help="Who the token is for. Default: you.")
@click.option("--role", type=click.Choice(TOKEN_ROLES), help="What it may do. Default: developer.")
@click.option(
    "--expires-in-days",
    type=click.IntRange(1, MAX_TOKEN_DAYS),
    metavar="DAYS",
    help=f"Lifetime, 1 to {MAX_TOKEN_DAYS} days. Default: {DEFAULT_TOKEN_DAYS}.",
)
@format_option()
@click.pass_obj
def create_token(
    out: Output,
    subject: str | None,
    role: str | None,
    expires_in_days: int | None,
    fmt: str,
) -> None:
    """Issue a token; its secret is shown this once and never stored."""
    from aether_cli.client import connect

    issued = connect().issue_token(subject=subject, role=role, expires_in_days=expires_in_days)

    def text() -> None:
        out.line(str(issued.get("token")))
        from aether_cli.log import get_logger

        get_logger().info(
            "token %s for %s (role %s), expires %s; the secret above is shown only now",
            issued.get("token_id"),
            issued.get("subject"),
            issued.get("role"),
            issued.get("expires_at"),
        )

    out.result(issued, text)


@tokens.command("list")
@format_option()
@click.pass_obj
def list_tokens(out: Output, fmt: str) -> None:
    """List tokens (never their secrets)."""
    from aether_cli.client import connect

    found = connect().list_tokens()

    def text() -> None:
        if not found:
            out.line("No stored tokens. Issue one with `aether tokens create`.")
            return
        rows = [
            [
                token.get("token_id"),
                token.get("subject"),
                token.get("role"),
                token.get("created_at"),
                token.get("expires_at"),
                "revoked" if token.get("revoked") else "active",
            ]
            for token in found
        ]
        out.table(["TOKEN ID", "SUBJECT", "ROLE", "CREATED", "EXPIRES", "STATE"], rows)

    out.result({"tokens": found}, text)


@tokens.command("pull")
@click.option("--app", "app", metavar="NAME", help="Only this app's. Default: every app's.")
@format_option()
@click.pass_obj
def list_pull_tokens(out: Output, app: str | None, fmt: str) -> None:
    """List the tokens pods download artifacts with (admins; never their secrets)."""
    from aether_cli.client import connect

    found = connect().list_pull_tokens(app)

    def text() -> None:
        if not found:
            out.line("No pull tokens: no app has been rolled out yet.")
            return
        rows = [
            [
                token.get("token_id"),
                token.get("app_name"),
                token.get("created_at"),
                token.get("expires_at"),
                _pull_state(token),
            ]
            for token in found
        ]
        out.table(["TOKEN ID", "APP", "CREATED", "EXPIRES", "STATE"], rows)

    out.result({"pull_tokens": found}, text)


def _pull_state(token: dict[str, object]) -> str:
    if token.get("current") and not token.get("revoked"):
        return "current"
    if token.get("revoked"):
        return "revoked"
    return "expired" if token.get("expired") else "active"


@tokens.command("rotate")
@click.argument("token_id", required=False)
@click.option(
    "--expires-in-days",
    type=click.IntRange(1, MAX_TOKEN_DAYS),
    metavar="DAYS",
    help=f"The new token's lifetime, 1 to {MAX_TOKEN_DAYS} days. Default: {DEFAULT_TOKEN_DAYS}.",
)
@format_option()
@click.pass_obj
def rotate_token(out: Output, token_id: str | None, expires_in_days: int | None, fmt: str) -> None:
    """Replace a token with a new one (same subject and role) and revoke the old one.

    Without TOKEN_ID, the token this CLI uses. When it comes from `aether login --token`,
    the new one takes its place in the session file (readable only by you) and is not
    shown; otherwise its secret is shown this once, as by `tokens create`.
    """
    from aether_cli import config
    from aether_cli.client import connect
    from aether_cli.errors import UsageError

    settings = config.load_settings()
    _, token = config.require_credentials(settings)
    current = stored_token_id(token)
    if token_id is None:
        if current is None:
            raise UsageError(
                "the token in use is an identity provider's access token, which refreshes "
                "itself: name a stored token to rotate",
                hint="`aether tokens list` shows them; `aether tokens rotate TOKEN_ID`",
            )
        token_id = current
    rotated = connect(settings).rotate_token(token_id, expires_in_days=expires_in_days)
    saved = settings.session
    if token_id == current and settings.credentials_from == "session" and saved is not None:
        _save_in_session(out, settings, rotated)
        return
    from aether_cli.log import get_logger

    def text() -> None:
        out.line(str(rotated.get("token")))
        get_logger().info(
            "token %s replaces %s (revoked), expires %s; the secret above is shown only now",
            rotated.get("token_id"),
            token_id,
            rotated.get("expires_at"),
        )

    out.result(rotated, text)
    if token_id == current and settings.credentials_from == "environment":
        get_logger().warning(
            "AETHER_TOKEN still holds the old token, now revoked: replace it with the new one"
        )


def stored_token_id(token: str) -> str | None:
    """The id inside a stored token's secret; None for anything else (an access token)."""
    if not token.startswith(STORED_TOKEN_PREFIX):
        return None
    token_id = token.removeprefix(STORED_TOKEN_PREFIX).partition("_")[0]
    return token_id or None


def _save_in_session(out: Output, settings: Any, rotated: dict[str, Any]) -> None:
    from dataclasses import replace
    from datetime import UTC, datetime

    from aether_cli import session
    from aether_cli.errors import LocalIOError

    path = settings.session_path
    renewed = replace(
        settings.session,
        token=str(rotated["token"]),
        token_id=rotated.get("token_id"),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    try:
        session.save(path, renewed)
    except LocalIOError as exc:
        # The old token is revoked already: losing the new one would lock the user out.
        out.line(str(rotated["token"]))
        exc.hint = "the new token is printed above; keep it with `aether login --token`"
        raise
    shown = {key: value for key, value in rotated.items() if key != "token"}
    out.result(
        {**shown, "saved_to": str(path)},
        lambda: out.line(
            f"Rotated token {rotated.get('replaces')} into {rotated.get('token_id')} "
            f"(expires {rotated.get('expires_at')}); the session in {path} holds the new one"
        ),
    )


@tokens.command("revoke")
@click.argument("token_id")
@format_option()
@click.pass_obj
def revoke_token(out: Output, token_id: str, fmt: str) -> None:
    """Revoke a token now; it is refused from the next request on."""
    from aether_cli.client import connect

    revoked = connect().revoke_token(token_id)
    out.result(revoked, lambda: out.line(f"Revoked token {token_id} of {revoked.get('subject')}"))
