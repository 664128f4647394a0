"""``aether keys generate|add|list``: the Ed25519 keys that sign an app's artifacts."""

from __future__ import annotations

from pathlib import Path

import click

from aether_cli.commands.apps import app_option
from aether_cli.output import Output, format_option


@click.group()
def keys() -> None:
    """Manage the public keys that verify your artifact signatures."""


def default_key_path() -> Path:
    from aether_cli.config import config_path

    return config_path().with_name("signing-key")


@keys.command("generate")
@click.option(
    "--out",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Where to write it. Default: signing-key beside the config file.",
)
@format_option()
@click.pass_obj
def generate_key(out: Output, path: Path | None, fmt: str) -> None:
    """Write a new signing key to a file only you can read, and say how to use it."""
    from aether_cli.signing import public_key_hex, write_new_key

    target = (path or default_key_path()).expanduser().absolute()
    public_hex = public_key_hex(write_new_key(target))

    def text() -> None:
        out.line(f"Wrote a new Ed25519 signing key to {target} (mode 0600)")
        out.line(f"Public key: {public_hex}")
        out.line("Sign your deploys with it, and register its public half for the app:")
        out.line(f"  export AETHER_SIGNING_KEY={target}")
        out.line("  aether keys add --app NAME")

    out.result({"path": str(target), "public_key_hex": public_hex}, text)


@keys.command("add")
@app_option()
@format_option()
@click.pass_obj
def add_key(out: Output, app: str | None, fmt: str) -> None:
    """Register the public key of AETHER_SIGNING_KEY for the app."""
    from aether_cli import config
    from aether_cli.client import connect
    from aether_cli.errors import ApiError, ConfigError
    from aether_cli.signing import load_signing_key, public_key_hex

    settings = config.load_settings()
    if not settings.signing_key:
        raise ConfigError(
            "AETHER_SIGNING_KEY is not set",
            hint="set it to a 64-hex-character Ed25519 seed or the path of a file holding one",
        )
    public_hex = public_key_hex(load_signing_key(settings.signing_key))
    client = connect(settings)
    name = config.resolve_app_name(app, settings, Path.cwd())
    try:
        key = client.add_public_key(name, public_hex)
        created = True
    except ApiError as exc:
        if exc.status != 409:
            raise
        key = {"app_name": name, "public_key_hex": public_hex, "active": True}
        created = False
    result = {**key, "created": created}

    def text() -> None:
        if created:
            out.line(f"Registered public key {public_hex} for {name} (key id {key.get('key_id')})")
        else:
            out.line(f"Public key {public_hex} is already registered for {name}")

    out.result(result, text)


@keys.command("list")
@app_option()
@format_option()
@click.pass_obj
def list_keys(out: Output, app: str | None, fmt: str) -> None:
    """List the app's public keys; marks the one of AETHER_SIGNING_KEY."""
    from aether_cli import config
    from aether_cli.client import connect
    from aether_cli.signing import load_signing_key, public_key_hex

    settings = config.load_settings()
    client = connect(settings)
    name = config.resolve_app_name(app, settings, Path.cwd())
    mine = public_key_hex(load_signing_key(settings.signing_key)) if settings.signing_key else None
    found = client.list_public_keys(name)

    def text() -> None:
        if not found:
            out.line(f"No public keys for {name}. Add one with `aether keys add`.")
            return
        rows = [
            [
                key.get("key_id"),
                "yes" if key.get("active") else "no",
                key.get("public_key_hex"),
                key.get("created_at"),
                "*" if mine and key.get("public_key_hex") == mine else "",
            ]
            for key in found
        ]
        out.table(["KEY ID", "ACTIVE", "PUBLIC KEY", "CREATED", "LOCAL"], rows)

    out.result({"app_name": name, "keys": found}, text)
