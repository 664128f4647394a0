"""What a Node.js project is: its package, workspace, package manager, Node line, commands.

Decisions (the CLI documents them to users):

* ``package.json`` is required and must hold a JSON object.
* Workspace: when a directory above declares the project as one of its workspaces
  (``workspaces`` in package.json for npm and Yarn, ``pnpm-workspace.yaml`` for pnpm),
  that directory's lockfile and install are used, and the project is deployed with
  its own production dependencies; otherwise the project is its own root.
* Package manager: see :mod:`aether_cli.package_managers`. Node line: see
  :mod:`aether_cli.node_versions`.
* Build: ``--build-command``, else ``[build] command`` in ``aether.toml``, else
  ``scripts.build`` (run with the project's package manager); ``--no-build`` skips it.
* Start command: ``scripts.start`` → ``npm start``; else ``node server.js`` when
  ``server.js`` exists (npm's own fallback for ``npm start``); else ``node <main>``
  when ``main`` is set; else :class:`ProjectError` with a hint. In a workspace the
  command runs in the package's directory.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aether_cli.node_versions import NodeChoice, NodeVersionError, choose_node_line
from aether_cli.package_managers import (
    LOCKFILES,
    PackageManager,
    PackageManagerError,
    check_linker,
    detect_package_manager,
    yaml_list,
)
from aether_cli.project_file import ProjectFile, read_project_file


class ProjectError(Exception):
    """The directory is not a deployable Node.js project (the CLI exits 10)."""


class ToolMissingError(Exception):
    """A tool Aether needs on this machine (npm) is not on PATH (the CLI exits 10)."""


@dataclass(frozen=True)
class NodeProject:
    root: Path  # the package deployed: holds its package.json
    name: str | None
    node: NodeChoice
    start_command: str  # as run in the package's directory
    manager: PackageManager
    workspace_root: Path  # holds the lockfile; the same as root outside a monorepo
    build_command: str | None = None  # a shell command; None: nothing to build
    build_source: str | None = None  # where build_command came from, for messages
    builds: bool = True  # False with --no-build: neither the app nor its workspace packages
    package: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    settings: ProjectFile = field(default_factory=ProjectFile, compare=False)

    @property
    def node_major(self) -> int:
        return self.node.major

    @property
    def node_major_source(self) -> str:
        return self.node.source

    @property
    def lockfile(self) -> Path | None:
        return self.manager.lockfile

    @property
    def package_path(self) -> str:
        """The package's directory relative to the workspace root ("" when it is the root)."""
        relative = self.root.relative_to(self.workspace_root).as_posix()
        return "" if relative == "." else relative

    def from_artifact_root(self, command: str) -> str:
        """``command`` (run in the package's directory) as the platform runs it, from the
        artifact's root."""
        return f"cd {self.package_path} && {command}" if self.package_path else command


def detect_project(
    root: Path,
    *,
    start_command: str | None = None,
    build_command: str | None = None,
    build: bool = True,
) -> NodeProject:
    """Read ``root/package.json``, its workspace and ``aether.toml`` into a NodeProject.

    ``start_command`` and ``build_command`` override detection (``--start-command``,
    ``--build-command``); ``build=False`` is ``--no-build``.
    """
    root = Path(root).resolve()
    package = read_package_json(root)
    settings = read_project_file(root)

    name = package.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ProjectError(f'{root / "package.json"}: "name" must be a non-empty string')

    workspace_root = find_workspace_root(root)
    root_package = package if workspace_root == root else read_package_json(workspace_root)
    try:
        manager = detect_package_manager(workspace_root, root_package)
        check_linker(workspace_root, manager)
        search = [root] if workspace_root == root else [root, workspace_root]
        node = choose_node_line(package, search)
    except (PackageManagerError, NodeVersionError) as exc:
        raise ProjectError(str(exc)) from None

    command = start_command or settings.start_command or _start_command(root, package)
    build_from: str | None = None
    if not build:
        build_command = None
    elif build_command:
        build_from = "--build-command"
    elif settings.build_command:
        build_command, build_from = settings.build_command, "aether.toml [build] command"
    elif _script(package, "build"):
        build_command, build_from = f"{manager.name} run build", "scripts.build"
    return NodeProject(
        root=root,
        name=name,
        node=node,
        start_command=command,
        manager=manager,
        workspace_root=workspace_root,
        build_command=build_command,
        build_source=build_from,
        builds=build,
        package=package,
        settings=settings,
    )


def read_package_json(root: Path) -> dict[str, Any]:
    path = root / "package.json"
    if not root.is_dir():
        raise ProjectError(f"{root} is not a directory")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProjectError(
            f"no package.json in {root}: run `aether deploy` from a Node.js project "
            "(or create one with `npm init`)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"cannot read {path}: {exc}") from None
    try:
        package = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProjectError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from None
    if not isinstance(package, dict):
        raise ProjectError(f"{path} must hold a JSON object")
    for key in ("engines", "scripts"):
        if key in package and not isinstance(package[key], dict):
            raise ProjectError(f'{path}: "{key}" must be an object')
    return package


def _script(package: dict[str, Any], name: str) -> str | None:
    value = (package.get("scripts") or {}).get(name)
    return value if isinstance(value, str) and value.strip() else None


def _start_command(root: Path, package: dict[str, Any]) -> str:
    if _script(package, "start"):
        return "npm start"
    if (root / "server.js").is_file():
        return "node server.js"
    main = package.get("main")
    if isinstance(main, str) and main.strip():
        return f"node {main}"  # the build may be what writes it: checked after the build
    raise ProjectError(
        f'cannot tell how to start {root}: add "scripts": {{"start": "node server.js"}} '
        "to package.json, or pass --start-command"
    )


# ---------------------------------------------------------------------------
# Workspaces


def find_workspace_root(root: Path) -> Path:
    """The nearest directory above ``root`` that lists it as a workspace, else ``root``."""
    for parent in root.parents:
        patterns = workspace_patterns(parent)
        if patterns is None:
            continue
        relative = root.relative_to(parent).as_posix()
        if matches_workspace(relative, patterns):
            return parent
        if _has_lockfile(parent):
            # A monorepo root that does not list this package: installing there
            # would not install it, and installing here would ignore the lockfile.
            raise ProjectError(
                f"{root} is inside the workspace at {parent} but not one of its packages: "
                f"add {relative!r} to its workspaces, or deploy from a directory that is"
            )
    return root


def workspace_patterns(directory: Path) -> list[str] | None:
    """The workspace globs a directory declares, or None when it declares none."""
    pnpm = directory / "pnpm-workspace.yaml"
    if pnpm.is_file():
        return yaml_list(pnpm.read_text(encoding="utf-8", errors="replace"), "packages") or []
    path = directory / "package.json"
    if not path.is_file():
        return None
    try:
        package = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    workspaces = package.get("workspaces") if isinstance(package, dict) else None
    if isinstance(workspaces, dict):  # Yarn's {"packages": [...], "nohoist": [...]}
        workspaces = workspaces.get("packages")
    if not isinstance(workspaces, list):
        return None
    return [item for item in workspaces if isinstance(item, str)]


def matches_workspace(relative: str, patterns: list[str]) -> bool:
    """Whether a package path matches the globs (``!`` excludes, the last match wins)."""
    matched = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.removeprefix("./").rstrip("/")
        if _glob(body).fullmatch(relative):
            matched = not negate
    return matched


def _glob(pattern: str) -> re.Pattern[str]:
    regex = ""
    segments = pattern.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            regex += ".+" if last else "(?:[^/]+/)*"
        else:
            regex += re.escape(segment).replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
            regex += "" if last else "/"
    return re.compile(regex)


def _has_lockfile(directory: Path) -> bool:
    return any((directory / name).is_file() for name, _ in LOCKFILES)
