"""Exceptions of the CLI and the one mapping from an exception to an exit code.

Exit codes (cli/README.md lists them): 0 success, 2 usage, 10 config, 20 runtime
internal (also: a deployment that failed or timed out, an API refusal that is
not about credentials), 30 I/O, 40 network (unreachable API or storage, 5xx
after retries). 130 is used for an interrupt, as shells do.

Nothing here imports requests, click internals beyond the exception types, or
the packing engine: this module is loaded by every invocation.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CONFIG = 10
EXIT_INTERNAL = 20
EXIT_IO = 30
EXIT_NETWORK = 40
EXIT_INTERRUPTED = 130


class AetherError(Exception):
    """An error the user can act on; ``message`` is one human line."""

    exit_code = EXIT_INTERNAL
    default_code = "internal"

    def __init__(self, message: str, *, code: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.hint = hint


class UsageError(AetherError):
    exit_code = EXIT_USAGE
    default_code = "usage"


class ConfigError(AetherError):
    exit_code = EXIT_CONFIG
    default_code = "config"


class InternalError(AetherError):
    exit_code = EXIT_INTERNAL
    default_code = "internal"


class LocalIOError(AetherError):
    exit_code = EXIT_IO
    default_code = "io"


class NetworkError(AetherError):
    exit_code = EXIT_NETWORK
    default_code = "network"


class NotAControlPlane(ConfigError):
    """The API URL answers, but not as Aether does (a web page, another service)."""

    default_code = "not_a_control_plane"


class UnsupportedError(AetherError):
    """The control plane answered as if the route did not exist."""

    exit_code = EXIT_INTERNAL
    default_code = "unsupported"


class ApiError(AetherError):
    """A non-2xx answer of the control plane, carrying its error envelope.

    ``enveloped`` is False when the body was not ``{"code", "message"}``: a
    gateway or an older control plane that does not know the route.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        enveloped: bool = True,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, code=code, hint=hint)
        self.status = status
        self.enveloped = enveloped
        # Credentials are configuration; a server that keeps failing is the
        # network's business; anything else is a refusal of this request.
        if status in (401, 403):
            self.exit_code = EXIT_CONFIG
        elif status >= 500:
            self.exit_code = EXIT_NETWORK
        else:
            self.exit_code = EXIT_INTERNAL


# (module, exception class, exit code, machine code) of the packing engine.
_ENGINE_ERRORS = (
    ("aether_cli.project", "ToolMissingError", EXIT_CONFIG, "tool_missing"),
    ("aether_cli.build", "BuildError", EXIT_CONFIG, "build"),
    ("aether_cli.project", "ProjectError", EXIT_CONFIG, "project"),
    ("aether_cli.project_file", "ProjectFileError", EXIT_CONFIG, "project"),
    ("aether_cli.package_managers", "PackageManagerError", EXIT_CONFIG, "tool_missing"),
    ("aether_cli.closure", "ClosureError", EXIT_CONFIG, "build"),
    ("aether_cli.native", "NativeAddonError", EXIT_CONFIG, "native_addon"),
    ("aether_cli.pack", "PackError", EXIT_IO, "io"),
    ("aether_cli.tree", "TreeError", EXIT_IO, "io"),
    ("aether_cli.ignore", "IgnoreFileError", EXIT_IO, "io"),
    ("aether_cli.staging", "StagingError", EXIT_IO, "io"),
)


@dataclass(frozen=True)
class Failure:
    """What the user is told: exit code, machine code, one human line."""

    exit_code: int
    code: str
    message: str
    hint: str | None = None
    status: int | None = None
    # Lines of a tool's own output that say why (a failed install or build), shown
    # under the error line.
    details: tuple[str, ...] = ()

    def human_line(self) -> str:
        """The single stderr line: message, where it came from, what to do."""
        line = " ".join(self.message.split())  # one line, whatever the server sent
        if self.status is not None:
            line += f" ({self.code}, HTTP {self.status})"
        if self.hint:
            line += f"; {self.hint}"
        return f"error: {line}"


def classify(exc: BaseException) -> Failure:
    """Map any exception to its exit code and message: the only such table."""
    import click

    if isinstance(exc, ApiError):
        return Failure(exc.exit_code, exc.code, exc.message, exc.hint, exc.status)
    if isinstance(exc, AetherError):
        return Failure(exc.exit_code, exc.code, exc.message, exc.hint)
    if isinstance(exc, click.exceptions.Abort | KeyboardInterrupt | EOFError):
        return Failure(EXIT_INTERRUPTED, "interrupted", "interrupted")
    if isinstance(exc, click.UsageError):
        return Failure(EXIT_USAGE, "usage", exc.format_message())
    if isinstance(exc, click.ClickException):
        return Failure(EXIT_USAGE, "usage", exc.format_message())
    # The packing engine's errors: matched by class only if its module was
    # imported, so an invocation that never packs never pays for the import.
    for module_name, class_name, exit_code, code in _ENGINE_ERRORS:
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            details = tuple(getattr(exc, "details", ()))
            return Failure(exit_code, code, str(exc) or class_name, details=details)
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        reason = exc.strerror or str(exc) or type(exc).__name__
        return Failure(EXIT_IO, "io", f"{reason}{where}")
    return Failure(EXIT_INTERNAL, "internal", f"internal error: {type(exc).__name__}: {exc}")
