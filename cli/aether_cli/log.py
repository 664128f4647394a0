"""Diagnostics on stderr: ``--log-level`` and ``--log-format``.

Results go through ``output``; everything else a command says while it works
(steps, npm's chatter, deployment events) is a log record on stderr, so stdout
stays machine-readable. Records are sentences unless ``--log-format json`` asks
for one JSON object per record, for log collectors. Import this module inside
commands, not at the top of a command module: ``aether --help`` should not pay
for ``logging``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from aether_cli import terminal

TRACE = 5
LOGGER_NAME = "aether"

_NUMERIC = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def configure(level: str, fmt: str) -> None:
    """Send the ``aether`` logger to stderr at ``level`` in the chosen format."""
    logging.addLevelName(TRACE, "TRACE")
    handler = TerminalHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger = logging.getLogger(LOGGER_NAME)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(_NUMERIC[level])
    logger.propagate = False


class TerminalHandler(logging.Handler):
    """Writes records to stderr above the live progress line, whatever stderr is now."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            terminal.write_err(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


def _word(levelno: int) -> str:
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    return "debug" if levelno >= logging.DEBUG else "trace"


class TextFormatter(logging.Formatter):
    """Plain sentences; only what is not routine carries its level."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno == logging.INFO:
            return message
        word = _word(record.levelno)
        role = {"error": "bad", "warn": "busy"}.get(word, "note")
        return f"{terminal.paint(word + ':', role, sys.stderr)} {message}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        return json.dumps(
            {
                "ts": ts.replace("+00:00", "Z"),
                "level": _word(record.levelno),
                "message": record.getMessage(),
            }
        )
