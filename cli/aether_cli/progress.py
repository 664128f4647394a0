"""Long steps on stderr: a spinner with the elapsed time on a terminal, plain lines elsewhere.

A command opens a step with ``Output.step(label)`` and keeps saying how it goes::

    with out.step("installing dependencies with pnpm") as step:
        run_pnpm(log=...)                   # log lines print above the spinner
        step.update("installing dependencies with pnpm: linking")
    # ✓ installing dependencies with pnpm (12.3s)

On a terminal (and not under ``--format json``) the step is one live line,
``⠹ installing dependencies with pnpm… 12s``, redrawn ten times a second and
replaced by ``✓ label (12.3s)`` when it ends, or ``✗ label (failed after 2.1s)``
when the block raises. Anywhere else it is quiet: one line when it starts, one for
each new wording, one when it ends, never a control character.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import Literal

from aether_cli import terminal

_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_REDRAW_SECONDS = 0.1
_QUIET_SECONDS = 1.0  # the elapsed time is worth showing only once it is noticeable


class Step:
    """One step that may take a while; use it as a context manager."""

    def __init__(self, label: str, *, animate: bool, total: int | None = None) -> None:
        self.label = label
        self.total = total
        self.done_count = 0
        self._animate = animate
        self._started = time.monotonic()
        self._final: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what callers say ----------------------------------------------------------------

    def update(self, label: str) -> None:
        """New wording for the step (``rolling out 1/2``); printed once when not animated."""
        if label == self.label:
            return
        self.label = label
        if not self._animate:
            _log(label)

    def advance(self, count: int) -> None:
        """``count`` more units (bytes) of ``total`` are done."""
        self.done_count += count

    def finish(self, label: str) -> None:
        """How to word the step once it succeeded (``rolled out 2/2``)."""
        self._final = label

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    # -- the context manager -------------------------------------------------------------

    def __enter__(self) -> Step:
        if self._animate:
            self._thread = threading.Thread(target=self._spin, name="aether-step", daemon=True)
            self._thread.start()
        else:
            _log(f"{self.label}…")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.end("done")
        else:
            self.end("stopped" if issubclass(exc_type, KeyboardInterrupt) else "failed")

    def end(self, outcome: Literal["done", "failed", "stopped"]) -> None:
        """Replace the live line by the step's last word; a second call does nothing."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        seconds = _seconds(self.elapsed)
        if outcome == "done":
            line = f"{self._final or self.label} ({seconds})"
            mark = terminal.paint("✓", "ok", sys.stderr)
        else:
            line = f"{self.label} ({outcome} after {seconds})"
            mark = terminal.paint("✗", "bad", sys.stderr)
        if self._animate:
            terminal.clear_live(f"{mark} {line}")
        else:
            _log(line)

    # -- internals -------------------------------------------------------------------------

    def _spin(self) -> None:
        frame = 0
        while not self._stop.is_set():
            terminal.show_live(self._live_text(_FRAMES[frame % len(_FRAMES)]))
            frame += 1
            self._stop.wait(_REDRAW_SECONDS)

    def _live_text(self, frame: str) -> str:
        parts = [terminal.paint(frame, "busy", sys.stderr), f"{self.label}…"]
        if self.total:
            share = min(self.done_count / self.total, 1.0)
            parts.append(f"{share:.0%} of {_size(self.total)}")
        if self.elapsed >= _QUIET_SECONDS:
            parts.append(terminal.paint(f"{self.elapsed:.0f}s", "note", sys.stderr))
        return " ".join(parts)


def _log(message: str) -> None:
    from aether_cli.log import get_logger

    get_logger().info(message)


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 60 else f"{int(value // 60)}m{int(value % 60):02d}s"


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    value = count / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
