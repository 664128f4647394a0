"""What an artifact holds: the app's files, its build output and its production closure.

Paths are relative to the staging root, so a workspace package keeps its place in the
monorepo (``apps/api/...`` beside the hoisted ``node_modules/``) and every package
resolves its dependencies in the pod exactly as it did in the build. Symlinks through
which a package was found are written as relative links, ``node_modules/.bin``
commands as relative links to the scripts of packages that are in the artifact.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from pathlib import Path

from aether_cli.closure import Closure
from aether_cli.ignore import IgnoreRules
from aether_cli.tree import Entry, Skipped, collect_entries, path_order

_SKIP = frozenset({"node_modules"})
# What package managers keep beside node_modules about an install: no use at run time.
_INSTALL_STATE = frozenset({".yarn", ".pnp.cjs", ".pnp.loader.mjs", ".pnpm-store"})


def artifact_entries(
    closure: Closure, rules: IgnoreRules, *, sources: Path, log: Callable[[str], None]
) -> list[Entry]:
    """Every entry of the artifact, sorted byte-wise by path.

    Installed packages are read from the closure's root, the app and its workspace
    packages (sources and build output) from ``sources``: the same directory, or the
    build's when the dependencies were installed apart for another platform.
    """
    skipped = Skipped()
    by_path: dict[str, Entry] = {}
    # What was not found by walking a directory (a walk lists each directory it enters):
    # these may need their parent directories added.
    placed: list[str] = []
    for package in sorted(closure.packages.values(), key=lambda p: p.directory):
        for entry in collect_entries(
            sources if package.workspace else closure.root,
            rules,
            start=package.directory,
            skip_names=_SKIP,
            exclude=_INSTALL_STATE if not package.directory else frozenset(),
            skipped=skipped,
        ):
            by_path.setdefault(entry.path, entry)
        if package.directory:
            by_path.setdefault(package.directory, Entry(package.directory, "", "dir", 0o755))
            placed.append(package.directory)
    skipped.report(log)

    for link in sorted(closure.links.values(), key=lambda item: item.path):
        if link.symlink:
            target = posixpath.relpath(link.package, posixpath.dirname(link.path))
            by_path[link.path] = Entry(link.path, "", "symlink", 0o777, target=target)
            placed.append(link.path)
    for entry in _bin_links(closure):
        by_path.setdefault(entry.path, entry)
        placed.append(entry.path)
    for path in placed:
        parent = posixpath.dirname(path)
        while parent and parent not in by_path:
            by_path[parent] = Entry(parent, "", "dir", 0o755)
            parent = posixpath.dirname(parent)
    return sorted(by_path.values(), key=path_order)


def _bin_links(closure: Closure) -> list[Entry]:
    """``node_modules/.bin/<command>`` for the commands of each package linked there."""
    entries: list[Entry] = []
    taken: set[str] = set()
    for link in sorted(closure.links.values(), key=lambda item: item.path):
        package = closure.packages[link.package]
        if not package.bins:
            continue
        modules, _, name = link.path.rpartition("/node_modules/")
        if not _:
            modules, name = "", link.path.removeprefix("node_modules/")
        bin_dir = f"{modules}/node_modules/.bin" if modules else "node_modules/.bin"
        for command, script in package.bins:
            path = f"{bin_dir}/{command}"
            script_path = posixpath.normpath(f"{bin_dir}/../{name}/{script}")
            if path in taken or not (closure.root / script_path).is_file():
                continue
            taken.add(path)
            target = posixpath.relpath(script_path, bin_dir)
            entries.append(Entry(path, "", "symlink", 0o777, target=target))
    return entries
