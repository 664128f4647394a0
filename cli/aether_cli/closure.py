"""The production closure: which installed packages an app needs at run time.

Instead of pruning the install (which would delete what the next build needs, and
differs per package manager), Aether reads the installed tree and follows what Node
itself would load: from the app's package, each name in ``dependencies``,
``optionalDependencies`` and (non-optional) ``peerDependencies`` is resolved as
``require`` does, through the ``node_modules`` directories above the package's real
path; then the same for each package found. ``devDependencies`` are never followed.
This works alike for npm's and Yarn's hoisted trees and pnpm's symlinked one, and for
workspace packages, which are found through their ``node_modules`` links.

An optional package whose ``os``, ``cpu`` or ``libc`` fields exclude the target
platform is left out (the per-platform binaries of esbuild, sharp, SWC).
"""

from __future__ import annotations

import json
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aether_cli.package_managers import node_arch

LIBC = "glibc"  # the platform's C library: Aether's base images are Debian slim


class ClosureError(Exception):
    """The installed tree lacks what the app needs (the CLI exits 10)."""


@dataclass(frozen=True)
class Package:
    directory: str  # relative to the staging root, the package's real location
    name: str
    version: str | None
    workspace: bool  # a local package of the workspace (source), not an installed one
    bins: tuple[tuple[str, str], ...] = ()  # (command, path inside the package)
    manifest: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Link:
    """A directory entry through which a package was found: ``node_modules/<name>``."""

    path: str  # relative to the staging root
    package: str  # the real directory it leads to
    symlink: bool


@dataclass
class Closure:
    root: Path
    app: Package
    packages: dict[str, Package]  # by real directory, the app included
    links: dict[str, Link]
    left_out: list[str]  # optional packages not for the target platform, as name@version
    edges: dict[str, set[str]]  # package directory → directories of what it requires

    def installed(self) -> list[Package]:
        return [p for p in self.packages.values() if not p.workspace]

    def workspace_packages(self) -> list[Package]:
        """Local packages the app depends on, each after what it depends on itself."""
        order: list[Package] = []
        seen: set[str] = set()

        def visit(directory: str) -> None:
            if directory in seen:
                return
            seen.add(directory)
            for required in sorted(self.edges.get(directory, ())):
                visit(required)
            package = self.packages[directory]
            if package.workspace and package is not self.app:
                order.append(package)

        visit(self.app.directory)
        return order


def production_closure(staging_root: Path, app_dir: str, *, platform: str) -> Closure:
    """Follow the app at ``staging_root/app_dir`` through the installed tree."""
    root = staging_root.resolve()
    app = _load(root, app_dir)
    if app is None:
        raise ClosureError(f"no package.json in {root / app_dir}")
    packages = {app.directory: app}
    links: dict[str, Link] = {}
    edges: dict[str, set[str]] = {}
    left_out: set[str] = set()
    missing: list[str] = []
    queue = deque([app])
    while queue:
        package = queue.popleft()
        edges.setdefault(package.directory, set())
        for name, optional in _runtime_dependencies(package.manifest):
            found = _resolve(root, package.directory, name)
            if found is None:
                if not optional:
                    missing.append(f"{name} (required by {_label(package)})")
                continue
            link_path, real = found
            target = packages.get(real) or _load(root, real)
            if target is None:
                if not optional:
                    missing.append(f"{name} (required by {_label(package)}: no package.json)")
                continue
            if optional and not _runs_on(target.manifest, platform):
                left_out.add(_label(target))
                continue
            links.setdefault(link_path, Link(link_path, real, (root / link_path).is_symlink()))
            edges[package.directory].add(real)
            if real not in packages:
                packages[real] = target
                queue.append(target)
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise ClosureError(
            f"the install lacks production dependencies: {shown}; is the lockfile complete?"
        )
    return Closure(root, app, packages, links, sorted(left_out), edges)


def _label(package: Package) -> str:
    return f"{package.name}@{package.version}" if package.version else package.name


def _runtime_dependencies(manifest: dict[str, Any]) -> list[tuple[str, bool]]:
    """(name, optional) of what a package needs at run time, in a stable order."""
    wanted: dict[str, bool] = {}
    for name in _names(manifest.get("dependencies")):
        wanted[name] = False
    for name in _names(manifest.get("optionalDependencies")):
        wanted[name] = True
    meta = manifest.get("peerDependenciesMeta")
    meta = meta if isinstance(meta, dict) else {}
    for name in _names(manifest.get("peerDependencies")):
        optional_peer = isinstance(meta.get(name), dict) and meta[name].get("optional") is True
        if not optional_peer and name not in wanted:
            # A peer is the dependent's to provide; when it is missing, Node's
            # require fails just as it would in the developer's own tree.
            wanted[name] = True
    return sorted(wanted.items())


def _names(value: Any) -> list[str]:
    return [name for name in value if isinstance(name, str)] if isinstance(value, dict) else []


def _resolve(root: Path, directory: str, name: str) -> tuple[str, str] | None:
    """Where ``require(name)`` from ``directory`` finds the package: (link, real dir).

    Node's lookup: ``<dir>/node_modules/<name>`` for the package's real directory and
    each one above it, skipping directories that are themselves ``node_modules``;
    never above the staging root.
    """
    parts = directory.split("/") if directory else []
    for depth in range(len(parts), -1, -1):
        if depth and parts[depth - 1] == "node_modules":
            continue
        base = "/".join(parts[:depth])
        link = f"{base}/node_modules/{name}" if base else f"node_modules/{name}"
        candidate = root / link
        if not candidate.exists():  # follows symlinks: a dangling one is not there
            continue
        real = os.path.realpath(candidate)
        if real != str(root) and not real.startswith(str(root) + os.sep):
            raise ClosureError(f"{link} points outside the project ({real})")
        return link, os.path.relpath(real, root)
    return None


def _load(root: Path, directory: str) -> Package | None:
    path = root / directory / "package.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ClosureError(f"cannot read {path}: {exc}") from None
    if not isinstance(manifest, dict):
        raise ClosureError(f"{path} does not hold a JSON object")
    name = manifest.get("name")
    version = manifest.get("version")
    workspace = "node_modules" not in directory.split("/")
    return Package(
        directory=directory,
        name=name if isinstance(name, str) else Path(directory).name,
        version=version if isinstance(version, str) else None,
        workspace=workspace,
        bins=_bins(manifest, name if isinstance(name, str) else Path(directory).name),
        manifest=manifest,
    )


def _bins(manifest: dict[str, Any], name: str) -> tuple[tuple[str, str], ...]:
    value = manifest.get("bin")
    if isinstance(value, str):
        return ((name.rsplit("/", 1)[-1], value),)
    if isinstance(value, dict):
        return tuple(
            sorted((str(k), v) for k, v in value.items() if isinstance(v, str) and "/" not in k)
        )
    return ()


def _runs_on(manifest: dict[str, Any], platform: str) -> bool:
    """Whether a package's ``os``/``cpu``/``libc`` fields allow the target platform."""
    os_name = platform.split("/")[0]
    return (
        _allows(manifest.get("os"), os_name)
        and _allows(manifest.get("cpu"), node_arch(platform))
        and _allows(manifest.get("libc"), LIBC)
    )


def _allows(field_value: Any, wanted: str) -> bool:
    """npm's rule: a list of names, where "!name" excludes; no list allows everything."""
    if isinstance(field_value, str):
        field_value = [field_value]
    if not isinstance(field_value, list) or not field_value:
        return True
    values = [v for v in field_value if isinstance(v, str)]
    if f"!{wanted}" in values:
        return False
    positives = [v for v in values if not v.startswith("!")]
    return not positives or wanted in positives
