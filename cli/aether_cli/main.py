"""Entry point of the ``aether`` command."""

import click

from aether_cli import __version__


@click.group()
@click.version_option(__version__, prog_name="aether")
def cli() -> None:
    """Deploy Node.js services from an artifact built on this machine."""
