"""Files written whole or not at all: a reader sees the old file or the new one, never half."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_write(path: Path, *, mode: int = 0o644, durable: bool = False) -> Iterator[BinaryIO]:
    """Write to a new temporary file beside ``path``; rename it over ``path`` only when the
    block succeeds, else remove it.

    The temporary name is unique and created exclusively (``mkstemp``): concurrent writers
    never share one, and a link planted beside ``path`` is never followed. ``mode`` is set
    exactly, whatever the umask. ``durable`` flushes the data to disk before the rename.
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            yield handle
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(
    path: Path, data: bytes | str, *, mode: int = 0o644, durable: bool = False
) -> None:
    """``path`` now holds ``data`` (text is written as UTF-8), whole or not at all."""
    with atomic_write(path, mode=mode, durable=durable) as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)
