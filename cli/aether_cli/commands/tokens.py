"""``aether tokens create|list|revoke``: API tokens for people and CI."""

from __future__ import annotations

import click

from aether_cli.contract import MAX_TOKEN_DAYS, TOKEN_ROLES
from aether_cli.output import Output, format_option


@click.group()
def tokens() -> None:
    """Issue, list and revoke API tokens (admins: anyone's; developers: their own)."""


@tokens.command("create")
@click.option("--subject", metavar="NAME", help="Who the token is for. Default: you.")
@click.option("--role", type=click.Choice(TOKEN_ROLES), help="What it may do. Default: developer.")
@click.option(
    "--expires-in-days",
    type=click.IntRange(1, MAX_TOKEN_DAYS),
    metavar="DAYS",
    help=f"Lifetime, 1 to {MAX_TOKEN_DAYS} days. Default: 90.",
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


@tokens.command("revoke")
@click.argument("token_id")
@format_option()
@click.pass_obj
def revoke_token(out: Output, token_id: str, fmt: str) -> None:
    """Revoke a token now; it is refused from the next request on."""
    from aether_cli.client import connect

    revoked = connect().revoke_token(token_id)
    out.result(revoked, lambda: out.line(f"Revoked token {token_id} of {revoked.get('subject')}"))
