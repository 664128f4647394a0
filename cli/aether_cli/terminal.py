"""What stderr and stdout can show: colour, and one live line that redraws in place.

Colour only reaches a terminal, and never when ``NO_COLOR`` is set (no-color.org) or
``--no-color`` was given. The live line is the bottom line of stderr while a long step
runs (a spinner, a byte count); everything else written to stderr meanwhile goes
through :func:`write_err`, which clears the live line, writes above it and redraws it,
so log lines and the spinner never garble each other.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from typing import IO

# SGR parameters by role, so callers say what a word means rather than which colour it is.
_STYLES = {
    "ok": "32",  # green
    "bad": "31",  # red
    "busy": "33",  # yellow
    "note": "2",  # dim
    "strong": "1",  # bold
}
# The colour of each deployment status wherever one is shown.
STATUS_STYLES = {
    "succeeded": "ok",
    "failed": "bad",
    "pending": "busy",
    "rolling_out": "busy",
    "releasing": "busy",
    "running": "busy",
}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

_colour_refused = False
_lock = threading.RLock()
_live_text: str | None = None


def refuse_colour() -> None:
    """``--no-color``: plain text for the rest of this invocation."""
    global _colour_refused
    _colour_refused = True


def is_tty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False


def colour_on(stream: IO[str]) -> bool:
    if _colour_refused or os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return is_tty(stream)


def paint(text: str, role: str | None, stream: IO[str] | None = None) -> str:
    """``text`` in the colour of ``role`` when ``stream`` (default stdout) shows colour."""
    if role is None or role not in _STYLES or not colour_on(stream or sys.stdout):
        return text
    return f"\x1b[{_STYLES[role]}m{text}\x1b[0m"


def paint_status(status: object, stream: IO[str] | None = None) -> str:
    text = "-" if status is None else str(status)
    return paint(text, STATUS_STYLES.get(text), stream)


def visible_width(text: str) -> int:
    return len(_ANSI.sub("", text))


# -- the live line -------------------------------------------------------------------------


def write_err(text: str) -> None:
    """Write ``text`` (whole lines) to stderr above the live line, if one is shown."""
    with _lock:
        stream = sys.stderr
        if _live_text is not None:
            stream.write("\r\x1b[2K")
        stream.write(text)
        if _live_text is not None:
            stream.write(_live_text)
        stream.flush()


def show_live(text: str) -> None:
    """Draw (or redraw) the live line; only call this when stderr is a terminal."""
    global _live_text
    with _lock:
        width = _terminal_columns()
        if visible_width(text) >= width:
            text = _ANSI.sub("", text)[: max(width - 1, 0)]
        _live_text = text
        sys.stderr.write("\r\x1b[2K" + text)
        sys.stderr.flush()


def clear_live(final: str | None = None) -> None:
    """Remove the live line, leaving ``final`` (a whole line) in its place."""
    global _live_text
    with _lock:
        if _live_text is not None:
            sys.stderr.write("\r\x1b[2K")
            _live_text = None
        if final is not None:
            sys.stderr.write(final + "\n")
        sys.stderr.flush()


def _terminal_columns() -> int:
    import shutil

    return shutil.get_terminal_size((80, 24)).columns
