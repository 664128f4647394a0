"""The one place that renders results: text for people, ``--format json`` for machines.

In JSON mode stdout carries exactly one object (the result or the error
envelope). To make that a guarantee rather than a convention, switching to JSON
points file descriptor 1 at stderr for the rest of the command, so a stray
print or a child process (npm) cannot write to the real stdout; the object is
written through a saved duplicate of the original descriptor.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from aether_cli import terminal

if TYPE_CHECKING:
    from aether_cli.errors import Failure
    from aether_cli.progress import Step

FORMATS = ("text", "json")
F = TypeVar("F", bound=Callable[..., Any])


class Output:
    """Renders the results and errors of one invocation."""

    def __init__(self) -> None:
        self.format = "text"
        self.emitted = False
        self._json_out: IO[str] | None = None
        self._undo: Callable[[], None] | None = None

    @property
    def json(self) -> bool:
        return self.format == "json"

    def use_format(self, fmt: str) -> None:
        self.format = fmt
        if fmt == "json":
            self._shield_stdout()

    def close(self) -> None:
        """Give stdout back (matters when the CLI runs in-process, as in tests)."""
        if self._undo is not None:
            self._undo()
            self._undo = None
        self._json_out = None

    # -- results -------------------------------------------------------------

    def result(self, data: dict[str, Any], text: Callable[[], None]) -> None:
        """Emit the command's result: ``data`` as JSON, or ``text()`` for a person."""
        if self.json:
            self._write_json(data)
        else:
            text()

    def line(self, message: str = "") -> None:
        """A line of the human-readable result on stdout (never in JSON mode)."""
        if not self.json:
            click.echo(message)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        """Aligned columns; a cell may be coloured (``terminal.paint``), padding ignores that."""
        cells = [[str(h) for h in headers]] + [
            ["-" if c is None else str(c) for c in r] for r in rows
        ]
        widths = [max(terminal.visible_width(row[i]) for row in cells) for i in range(len(headers))]
        for row in cells:
            padded = (
                c + " " * (w - terminal.visible_width(c)) for c, w in zip(row, widths, strict=True)
            )
            click.echo("  ".join(padded).rstrip())

    def record(self, data: dict[str, Any]) -> None:
        """One object of a JSON Lines stream (``logs --format json``)."""
        import json

        stream = self._json_out or sys.stdout
        stream.write(json.dumps(data, separators=(",", ":"), default=str) + "\n")
        stream.flush()

    def error(self, failure: Failure) -> None:
        """One human line on stderr and, in JSON mode, the error envelope on stdout."""
        line = failure.human_line()
        word, _, rest = line.partition(" ")
        terminal.write_err(f"{terminal.paint(word, 'bad', sys.stderr)} {rest}\n")
        for detail in failure.details:
            terminal.write_err(f"  | {detail}\n")
        if self.json and not self.emitted:
            error: dict[str, Any] = {"code": failure.code, "message": failure.message}
            if failure.details:
                error["details"] = list(failure.details)
            self._write_json({"error": error})

    # -- progress --------------------------------------------------------------

    def step(self, label: str, *, total: int | None = None) -> Step:
        """A long step on stderr (``with out.step("installing dependencies") as step:``).

        A spinner with the elapsed time on a terminal; plain lines when stderr is not
        one or under ``--format json``. ``total`` (bytes) adds a percentage that
        ``step.advance(n)`` moves. See ``aether_cli.progress``.
        """
        from aether_cli.progress import Step

        return Step(label, animate=not self.json and terminal.is_tty(sys.stderr), total=total)

    @contextmanager
    def progress(self, length: int, label: str) -> Iterator[Callable[[int], None]]:
        """Yield an ``advance(n_bytes)`` callable; draws a bar only on a terminal."""
        if not terminal.is_tty(sys.stderr):
            yield _ignore
            return
        with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
            yield bar.update

    # -- internals -------------------------------------------------------------

    def _write_json(self, data: dict[str, Any]) -> None:
        import json

        stream = self._json_out or sys.stdout
        stream.write(json.dumps(data, separators=(",", ":"), default=str) + "\n")
        stream.flush()
        self.emitted = True

    def _shield_stdout(self) -> None:
        if self._json_out is not None:
            return
        sys.stdout.flush()
        original = sys.stdout
        try:
            fd = original.fileno()
            err_fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            # In-process (CliRunner): no descriptors, swapping the objects is enough.
            sys.stdout = sys.stderr
            self._json_out = original

            def undo_swap() -> None:
                sys.stdout = original

            self._undo = undo_swap
            return
        saved = os.dup(fd)
        os.dup2(err_fd, fd)
        json_out = os.fdopen(saved, "w", encoding="utf-8")
        self._json_out = json_out

        def undo_dup() -> None:
            sys.stdout.flush()
            os.dup2(json_out.fileno(), fd)
            json_out.close()

        self._undo = undo_dup


def _ignore(_: int) -> None:
    return None


def stdin_is_tty() -> bool:
    return terminal.is_tty(sys.stdin)


def _set_format(ctx: click.Context, _param: click.Parameter, value: str) -> str:
    output = ctx.find_object(Output)
    if output is not None:
        output.use_format(value)
    return value


def format_option(
    help_text: str = "Output for people (text) or for programs (json).",
) -> Callable[[F], F]:
    """``--format text|json``, applied before the other options so their errors are JSON too."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="text",
        show_default=True,
        is_eager=True,
        callback=_set_format,
        help=help_text,
    )
