"""``NAME=VALUE`` arguments (``deploy --env``, ``config set``) and config names, checked
by the contract's rules before anything is built or sent. A value is never echoed."""

from __future__ import annotations

import re

import click

from aether_cli.contract import ENV_NAME_PATTERN, MAX_CONFIG_VALUE_BYTES, RESERVED_ENV_NAMES


def config_name(value: str) -> str:
    if not re.fullmatch(ENV_NAME_PATTERN, value):
        raise click.BadParameter(
            f"{value!r} is not a config name (letters, digits and '_', not starting with a digit)"
        )
    if value in RESERVED_ENV_NAMES:
        raise click.BadParameter(f"{value} is set by the platform")
    return value


def parse_assignments(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    """A click callback: the ``NAME=VALUE`` items as a dict, the last one of a name winning."""
    parsed: dict[str, str] = {}
    for item in values:
        name, equals, value = item.partition("=")
        if not equals:
            raise click.BadParameter(f"{name!r} is not NAME=VALUE")
        config_name(name)
        size = len(value.encode())
        if size > MAX_CONFIG_VALUE_BYTES:
            raise click.BadParameter(
                f"the value of {name} is {size} bytes; "
                f"a config value holds at most {MAX_CONFIG_VALUE_BYTES}"
            )
        parsed[name] = value
    return parsed


def parse_names(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> list[str]:
    """A click callback: config names, each checked, sorted and once."""
    return sorted({config_name(value) for value in values})
