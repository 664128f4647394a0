"""``aether completions --shell bash|zsh|fish`` (hidden): print a completion script."""

from __future__ import annotations

import click


@click.command(hidden=True)
@click.option("--shell", type=click.Choice(["bash", "zsh", "fish"]), required=True)
@click.pass_context
def completions(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script, e.g. `aether completions --shell bash > aether.bash`."""
    from click.shell_completion import get_completion_class

    root = ctx.find_root()
    completion_class = get_completion_class(shell)
    assert completion_class is not None  # every choice above is one click ships
    script = completion_class(root.command, {}, root.info_name or "aether", "_AETHER_COMPLETE")
    click.echo(script.source())
