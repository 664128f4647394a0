"""Walking a tree into the sorted list of entries an archive holds.

Symlinks stay symlinks when they resolve inside the tree; absolute links and links that
leave it are left out with a warning, as are devices, FIFOs, sockets and names that are
not valid UTF-8. Hard links become files.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from aether_cli.ignore import ALWAYS_EXCLUDED_NAMES, ENV_TAG, IgnoreRules


class TreeError(Exception):
    """The tree cannot be read (the CLI exits 30)."""


class Entry(NamedTuple):
    # A NamedTuple, not a dataclass: one is made per path, and tuples are cheap.
    path: str  # relative, "/"-separated, no trailing slash
    source: str  # absolute path on disk
    kind: str  # "file" | "dir" | "symlink"
    mode: int  # normalised
    size: int = 0
    target: str = ""  # symlink target, as stored
    # For files: (mtime_ns, ctime_ns, inode). Any write changes ctime, which no tool
    # sets back, so an unchanged triple means unchanged bytes (git's index relies on it).
    changed: tuple[int, int, int] = (0, 0, 0)


class Skipped:
    """Paths left out that the user should hear about, grouped by reason."""

    def __init__(self) -> None:
        self.by_reason: dict[str, list[str]] = {}

    def add(self, reason: str, path: str) -> None:
        self.by_reason.setdefault(reason, []).append(path)

    def report(self, log: Callable[[str], None]) -> None:
        for reason, paths in self.by_reason.items():
            paths = sorted(paths)
            shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
            log(f"warning: left out {len(paths)} {reason}: {shown}")


_ENV_REASON = ".env file(s) (secrets stay on this machine; pass them with --env)"


def collect_entries(
    root: Path,
    rules: IgnoreRules,
    *,
    start: str = "",
    exclude: frozenset[str] = frozenset(),
    skip_names: frozenset[str] = frozenset(),
    skipped: Skipped | None = None,
) -> list[Entry]:
    """Every path to pack under ``root`` (or its subdirectory ``start``), sorted
    byte-wise by UTF-8 path; paths are relative to ``root`` either way.

    ``exclude`` holds relative paths left out silently (output dir, nested
    dependencies); ``skip_names`` names left out wherever they appear.
    """
    skipped = skipped if skipped is not None else Skipped()
    root_real = os.path.realpath(root)
    entries: list[Entry] = []
    skip = ALWAYS_EXCLUDED_NAMES | skip_names
    match = rules.match  # once per path: bound here, not looked up each time
    stack = [(start, str(root / start) if start else str(root))]
    while stack:
        rel_dir, abs_dir = stack.pop()
        try:
            scan = list(os.scandir(abs_dir))
        except OSError as exc:
            raise TreeError(f"cannot list {abs_dir}: {exc.strerror or exc}") from None
        for item in scan:
            rel = f"{rel_dir}/{item.name}" if rel_dir else item.name
            if item.name in skip or rel in exclude:
                continue
            try:
                # d_type from the directory listing says dir or symlink without a
                # syscall; only regular files need lstat (size, exec bit).
                if item.is_dir(follow_symlinks=False):
                    fmt, st = stat.S_IFDIR, None
                elif item.is_symlink():
                    fmt, st = stat.S_IFLNK, None
                else:
                    st = item.stat(follow_symlinks=False)
                    fmt = stat.S_IFMT(st.st_mode)
            except OSError as exc:
                raise TreeError(f"cannot stat {item.path}: {exc.strerror or exc}") from None
            is_dir = fmt == stat.S_IFDIR
            rule = match(rel, is_dir=is_dir)
            if rule is not None and not rule.negate:
                if rule.tag == ENV_TAG:
                    skipped.add(_ENV_REASON, rel)
                continue
            if not rel.isascii() and not _is_utf8(rel):
                skipped.add(
                    "path(s) that are not valid UTF-8", os.fsencode(rel).decode("utf-8", "replace")
                )
                continue
            if is_dir:
                entries.append(Entry(rel, item.path, "dir", 0o755))
                stack.append((rel, item.path))
            elif fmt == stat.S_IFREG and st is not None:
                mode = 0o755 if st.st_mode & 0o111 else 0o644
                changed = (st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                entries.append(Entry(rel, item.path, "file", mode, st.st_size, changed=changed))
            elif fmt == stat.S_IFLNK:
                target = str(Path(item.path).readlink())
                problem = _symlink_problem(rel, item.path, target, root_real)
                if problem:
                    skipped.add(problem, f"{rel} -> {target}")
                elif not _is_utf8(target):
                    skipped.add("symlink(s) whose target is not valid UTF-8", rel)
                else:
                    entries.append(Entry(rel, item.path, "symlink", 0o777, target=target))
            else:
                skipped.add("special file(s) (device, FIFO or socket)", rel)
    entries.sort(key=path_order)
    return entries


def path_order(entry: Entry) -> str:
    """The sort key of byte-wise UTF-8 order: UTF-8 orders as code points do, so the string
    itself sorts the same (its paths are valid UTF-8) without encoding each one."""
    return entry.path


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # surrogate-escaped bytes from a non-UTF-8 name
        return False
    return True


def _symlink_problem(rel: str, source: str, target: str, root_real: str) -> str | None:
    if target.startswith("/"):
        return "symlink(s) with an absolute target"
    # Archive paths are POSIX paths whatever the platform: posixpath, not os.path.
    lexical = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if lexical == ".." or lexical.startswith("../"):
        return "symlink(s) pointing outside the project"
    # Also resolve through the file system: "a/.." where a -> "." escapes even
    # though it looks inside.
    resolved = os.path.realpath(source)
    if resolved != root_real and not resolved.startswith(root_real + os.sep):
        return "symlink(s) pointing outside the project"
    return None
