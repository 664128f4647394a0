"""Entry point of the ``aether`` command.

Only click and this package's tiny modules load here. Each command lives in
``aether_cli.commands.*`` and is imported when it is named (``--help`` imports
the command modules for their one-line help, and they import nothing heavy at
module level). Every exception ends in ``AetherGroup.main``, which maps it to
an exit code through ``errors.classify`` and renders it through ``Output``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from aether_cli import __version__
from aether_cli.output import Output

LOG_LEVELS = ("trace", "debug", "info", "warn", "error")
LOG_FORMATS = ("text", "json")

# name -> "module:attribute", in the order a newcomer uses them.
COMMANDS = {
    "login": "aether_cli.commands.auth:login",
    "whoami": "aether_cli.commands.auth:whoami",
    "deploy": "aether_cli.commands.deploy:deploy",
    "status": "aether_cli.commands.apps:status",
    "logs": "aether_cli.commands.logs:logs",
    "list": "aether_cli.commands.apps:list_apps",
    "apps": "aether_cli.commands.apps:apps",
    "rollback": "aether_cli.commands.apps:rollback",
    "promote": "aether_cli.commands.releases:promote",
    "releases": "aether_cli.commands.releases:releases",
    "config": "aether_cli.commands.releases:config",
    "scale": "aether_cli.commands.releases:scale",
    "restart": "aether_cli.commands.releases:restart",
    "run": "aether_cli.commands.runs:run",
    "runs": "aether_cli.commands.runs:runs",
    "open": "aether_cli.commands.releases:open_app",
    "keys": "aether_cli.commands.keys:keys",
    "tokens": "aether_cli.commands.tokens:tokens",
    "hooks": "aether_cli.commands.hooks:hooks",
    "logout": "aether_cli.commands.auth:logout",
    "completions": "aether_cli.commands.completions:completions",
}


class AetherGroup(click.Group):
    """Imports commands on demand and owns the one error funnel."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        output = extra.setdefault("obj", Output())
        if prog_name is None:
            prog_name = "aether"
        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except SystemExit:
            raise
        except BaseException as exc:  # the one place where failures become exit codes
            code = report_failure(exc, output, argv)
            output.close()
            sys.exit(code)
        output.close()
        sys.exit(rv if isinstance(rv, int) else 0)


def run() -> NoReturn:
    """The ``aether`` console script: the command, then an exit without the interpreter's
    teardown. Once the command is done, the exit handlers have run and what it wrote is
    flushed, the teardown would only free the objects left (a deploy's file lists: 20-30
    ms, one by one), which the operating system does at once. A thread still running is
    left to the interpreter's own shutdown, which knows how to wind it down."""
    import atexit
    import contextlib
    import os
    import threading

    try:
        cli.main()
        status = 0
    except SystemExit as done:
        status = _exit_status(done.code)
    if any(
        not thread.daemon
        for thread in threading.enumerate()
        if thread is not threading.current_thread()
    ):
        sys.exit(status)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        # A reader that went away, a stream already closed: nothing more can reach them.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


def _exit_status(code: object) -> int:
    """``sys.exit``'s argument as the process's status, as the interpreter would make it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def report_failure(exc: BaseException, output: Output, argv: Sequence[str]) -> int:
    """Tell the user what went wrong (stderr, plus the JSON envelope) and pick the exit code."""
    import errno

    from aether_cli.errors import classify

    if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
        # The reader went away (``aether list | head``): nothing left to say to it.
        _silence_stdout()
        return 0
    failure = classify(exc)
    if isinstance(exc, click.UsageError) and _wants_json(argv):
        output.use_format("json")
    if isinstance(exc, click.UsageError) and not output.json:
        exc.show(file=sys.stderr)
    else:
        output.error(failure)
    if failure.code == "internal":
        _debug_traceback(exc)
    return failure.exit_code


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether ``--format json`` was asked for, even if parsing failed before reading it."""
    for index, arg in enumerate(argv):
        if arg == "--format=json" or (
            arg == "--format" and index + 1 < len(argv) and argv[index + 1] == "json"
        ):
            return True
    return False


def _debug_traceback(exc: BaseException) -> None:
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger("aether").debug("traceback", exc_info=exc)


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


@click.group(cls=AetherGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS),
    default="info",
    show_default=True,
    envvar="AETHER_LOG_LEVEL",
    help="How much to say on stderr.",
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="text",
    show_default=True,
    envvar="AETHER_LOG_FORMAT",
    help="Diagnostics as sentences, or as JSON lines for a log collector.",
)
@click.option(
    "--no-color",
    is_flag=True,
    help="No colour, even on a terminal (as NO_COLOR=1 does).",
)
@click.version_option(__version__, "-V", "--version", prog_name="aether")
def cli(log_level: str, log_format: str, no_color: bool) -> None:
    """Deploy Node.js services from an artifact built on this machine.

    \b
    Typical use:
      aether login --api-url https://aether.example.com
      aether deploy
      aether logs --follow
    """
    from aether_cli.log import configure

    if no_color:
        from aether_cli.terminal import refuse_colour

        refuse_colour()
    configure(log_level, log_format)
