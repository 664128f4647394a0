"""The staging directory: a private copy of the project where installs and builds run.

Aether never writes to a project outside its ``.aether/`` directory. The build runs
in ``.aether/staging/``, a mirror of the workspace root (the project itself outside a
monorepo) with everything but ``.git``, ``.aether``, ``node_modules`` and what
``.aetherignore`` leaves out (``.env`` files are copied: a build may read them, and
they are still kept out of the artifact).

The mirror is brought up to date incrementally: a file is copied again only when its
size, mtime or mode differ from the last copy, or the copy itself was changed; files
gone from the project are removed from the mirror. What the install and the build
write (``node_modules``, ``dist/``) is left in place, so an unchanged lockfile installs
nothing and a build's outputs persist as they would in the project itself. Copies are
reflinks where the file system has them (copy-on-write, instant), plain copies else:
never hard links, since a build writing a file in place would then change the
developer's own file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aether_cli.atomic import write_atomic
from aether_cli.ignore import ENV_TAG, IgnoreRules
from aether_cli.tree import Entry, Skipped, collect_entries

STATE_NAME = "staging.json"
_STATE_VERSION = 1
_FICLONE = 0x40049409  # linux/fs.h: share the source's extents (a reflink)


class StagingError(Exception):
    """The staging copy could not be written (the CLI exits 30)."""


@dataclass(frozen=True)
class SyncResult:
    root: Path  # the mirror of the workspace root
    copied: int
    removed: int
    kept: int

    @property
    def changed(self) -> bool:
        return bool(self.copied or self.removed)


def sync_tree(
    source: Path,
    mirror: Path,
    rules: IgnoreRules,
    *,
    state_file: Path,
    log: Callable[[str], None],
) -> SyncResult:
    """Bring ``mirror`` up to date with ``source`` (see the module docstring)."""
    skipped = Skipped()
    entries = collect_entries(
        source, rules.without(ENV_TAG), skip_names=frozenset({"node_modules"}), skipped=skipped
    )
    skipped.report(log)
    previous = _read_state(state_file)
    mirror.mkdir(parents=True, exist_ok=True)
    state: dict[str, list[object]] = {}
    copied = kept = 0
    try:
        for entry in entries:
            dest = mirror / entry.path
            recorded = previous.get(entry.path)
            if entry.kind == "dir":
                if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
                    _remove(dest)
                dest.mkdir(exist_ok=True)
                state[entry.path] = ["dir"]
                continue
            wanted = _source_key(entry)
            if recorded is not None and recorded[:-1] == wanted and _dest_key(dest) == recorded[-1]:
                state[entry.path] = recorded
                kept += 1
                continue
            _remove(dest)
            if entry.kind == "symlink":
                dest.symlink_to(entry.target)
            else:
                _copy_file(entry, dest)
            state[entry.path] = [*wanted, _dest_key(dest)]
            copied += 1
        removed = 0
        # Deepest first, so a directory is removed after what it held.
        for path in sorted(set(previous) - set(state), key=len, reverse=True):
            target = mirror / path
            if target.is_symlink() or target.exists():
                _remove(target)
                removed += 1
    except OSError as exc:
        raise StagingError(f"cannot update the staging copy in {mirror}: {exc}") from None
    _write_state(state_file, state)
    return SyncResult(mirror, copied, removed, kept)


def _source_key(entry: Entry) -> list[object]:
    mtime_ns, ctime_ns, inode = entry.changed
    return [entry.kind, entry.mode, entry.size, mtime_ns, ctime_ns, inode, entry.target]


def _dest_key(path: Path) -> list[int]:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return []
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _copy_file(entry: Entry, dest: Path) -> None:
    source = Path(entry.source)
    with source.open("rb") as src, dest.open("wb") as out:
        if not _reflink(src.fileno(), out.fileno()):
            shutil.copyfileobj(src, out, 1024 * 1024)
    dest.chmod(entry.mode)
    st = source.stat()
    # The source's mtime: tools that compare mtimes (tsc --incremental, make) see
    # the project's history, not the time of the copy.
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))


def _reflink(src: int, dest: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import fcntl

    try:
        fcntl.ioctl(dest, _FICLONE, src)
    except OSError:
        return False
    return True


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _read_state(path: Path) -> dict[str, list[object]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != _STATE_VERSION:
        return {}
    paths = data.get("paths")
    return paths if isinstance(paths, dict) else {}


def _write_state(path: Path, state: dict[str, list[object]]) -> None:
    write_atomic(path, json.dumps({"version": _STATE_VERSION, "paths": state}))


def remove_outputs(mirror: Path, state_file: Path) -> int:
    """Remove what installs and builds wrote beside the mirrored sources (``dist/``,
    ``build/``), ``node_modules`` excepted: done before a new install, so nothing an
    earlier dependency tree produced outlives it. Returns how many paths went."""
    mirrored = set(_read_state(state_file))
    removed = 0
    stack = [("", mirror)]
    while stack:
        relative, directory = stack.pop()
        for entry in list(os.scandir(directory)):
            path = f"{relative}/{entry.name}" if relative else entry.name
            if entry.name == "node_modules":
                continue
            if path not in mirrored:
                _remove(Path(entry.path))
                removed += 1
            elif entry.is_dir(follow_symlinks=False):
                stack.append((path, Path(entry.path)))
    return removed


def clean(directory: Path) -> None:
    """Forget the staging copy and what was installed and built in it."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(directory)
