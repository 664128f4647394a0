"""The edge build: stage, install everything, build, keep the production closure.

As Heroku's Node.js buildpack does it, but in ``.aether/`` on the developer's machine:

1. The workspace is mirrored into ``.aether/staging/`` (:mod:`aether_cli.staging`).
2. Every dependency, dev ones included, is installed there from the lockfile with the
   project's package manager, frozen, under a Node of the target major, for the target
   platform. Skipped when nothing that decides the install has changed.
3. The build runs there (workspace packages the app depends on first), with
   ``NODE_ENV=production``. Skipped when neither the sources nor the install changed
   since the last successful build.
4. What the artifact holds is the app's files and its production closure
   (:mod:`aether_cli.closure`), checked: native addons for the target, a start command
   that has what it runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aether_cli.artifact_tree import artifact_entries
from aether_cli.atomic import write_atomic
from aether_cli.closure import Closure, production_closure
from aether_cli.ignore import IgnoreRules
from aether_cli.native import NativeAddon, check_addon
from aether_cli.nodejs import host_platform
from aether_cli.package_managers import (
    INSTALL_CONFIG_FILES,
    LOCKFILES,
    Tool,
    find_tool,
    target_configuration,
    tool_environment,
)
from aether_cli.project import NodeProject, ProjectError
from aether_cli.staging import SyncResult, clean, remove_outputs, sync_tree
from aether_cli.tree import Entry

STAGING_DIR = "staging"
_STAMPS_DIR = "stamps"
_STAMP_VERSION = 1
# Lines of a failed tool's output worth showing, and what is noise in them.
_TAIL_LINES = 12
_NOISE = re.compile(
    r"(A complete log of this run can be found in|^npm (error|ERR!)\s*$|^Progress: resolved|"
    r"Visit https://yarnpkg\.com|^info |^\s*$|YN0000: (┌|└|·) )"
)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_START_EXTENSIONS = ("", ".js", ".cjs", ".mjs", "/index.js")


class BuildError(ProjectError):
    """An install or build failed; ``details`` are the last meaningful lines of its output."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


@dataclass(frozen=True)
class NodeRuntime:
    """The Node the build runs under (see :mod:`aether_cli.nodejs`)."""

    version: str
    bin_dir: Path
    headers: Path | None  # a directory with include/node, for native addon builds


@dataclass(frozen=True)
class BuildResult:
    project: NodeProject
    staging: Path
    closure: Closure
    entries: list[Entry]
    native_addons: list[NativeAddon]
    platform: str
    node_version: str
    tool: str  # "pnpm 9.12.0"
    start_command: str  # as the platform runs it, from the artifact's root

    def describe(self) -> dict[str, Any]:
        """What the manifest says about how the artifact was made and where it runs."""
        return {
            "target": {"platform": self.platform, "libc": "glibc", "node": self.project.node_major},
            "build": {
                "node": self.node_version,
                "package_manager": self.tool,
                "command": self.project.build_command,
                "workspace_package": self.project.package_path or None,
            },
            "start_command": self.start_command,
            "native_addons": [addon.to_json() for addon in self.native_addons],
        }


Log = Callable[[str], None]


def _quiet(_line: str) -> None:
    """Default ``detail``: say nothing."""


@dataclass(frozen=True)
class Reporter:
    """How the build speaks: ``log`` for what it does (a "warning: " prefix marks a
    warning), ``detail`` for the tools' own output (shown when asked for), ``step`` for a
    long step the user should see progress of (a spinner on a terminal)."""

    log: Log
    detail: Log = _quiet
    step: Callable[[str], AbstractContextManager[object]] = lambda _label: nullcontext()


def build_project(
    project: NodeProject,
    *,
    work_dir: Path,
    node: NodeRuntime,
    platform: str,
    cache_dir: Path,
    report: Reporter,
    fresh: bool = False,
) -> BuildResult:
    """Run steps 1-4 for ``project`` under ``work_dir`` (its ``.aether``); ``fresh``
    (``--clean``) forgets the staging copy and its installs first."""
    log = report.log
    stamps = work_dir / _STAMPS_DIR
    if fresh:
        for directory in [work_dir / STAGING_DIR, stamps, *work_dir.glob("target-*")]:
            clean(directory)
    stamps.mkdir(parents=True, exist_ok=True)
    rules = IgnoreRules.for_workspace(project.workspace_root, project.package_path)
    sync = sync_tree(
        project.workspace_root,
        work_dir / STAGING_DIR,
        rules,
        state_file=stamps / "staging.json",
        log=log,
    )
    if sync.changed:
        log(f"staged {sync.copied} changed and {sync.removed} removed file(s)")
    env = _environment(node, work_dir)
    tool = find_tool(project.manager, sync.root, env=env, cache_dir=cache_dir, log=log)
    tool = _with_shim(tool, work_dir / "bin")
    _install(project, sync, tool, env, platform, node, stamps, report)

    package_dir = project.package_path
    dependencies_root = sync.root
    if platform != host_platform():
        # The build's install is for this machine (its tools must run here); the
        # artifact's dependencies come from a second install, for the target.
        dependencies_root = work_dir / f"target-{platform.replace('/', '-')}"
        _install_for_target(
            project, sync.root, dependencies_root, tool, env, platform, node, stamps, report
        )
    closure = production_closure(dependencies_root, package_dir, platform=platform)
    _build(project, sync, closure, tool, env, stamps, report)

    entries = artifact_entries(closure, rules, sources=sync.root, log=log)
    start = _checked_start_command(project, sync.root, entries, log)
    addons = _native_addons(closure, entries, platform, project)
    if closure.left_out:
        log(
            f"left out {len(closure.left_out)} optional package(s) built for other platforms "
            f"than {platform}"
        )
    return BuildResult(
        project=project,
        staging=sync.root,
        closure=closure,
        entries=entries,
        native_addons=addons,
        platform=platform,
        node_version=node.version,
        tool=f"{project.manager.name} {tool.version}",
        start_command=project.from_artifact_root(start),
    )


def _environment(node: NodeRuntime, work_dir: Path) -> dict[str, str]:
    env = tool_environment(dict(os.environ))
    shims = work_dir / "bin"
    env["PATH"] = os.pathsep.join([str(node.bin_dir), str(shims), env.get("PATH", "")])
    if node.headers is not None:
        # node-gyp builds native addons against these headers instead of downloading them.
        env["npm_config_nodedir"] = str(node.headers)
    return env


def _with_shim(tool: Tool, shims: Path) -> Tool:
    """Put the chosen package manager on PATH under its own name, so that scripts
    calling ``pnpm`` or ``yarn`` get the pinned version too."""
    if len(tool.argv) == 1:
        return tool
    shims.mkdir(parents=True, exist_ok=True)
    shim = shims / tool.manager.name
    script = "#!/bin/sh\nexec " + " ".join(shlex.quote(a) for a in tool.argv) + ' "$@"\n'
    if not shim.is_file() or shim.read_text() != script:
        write_atomic(shim, script, mode=0o755)
    return Tool(tool.manager, (tool.manager.name,), tool.version)


# ---------------------------------------------------------------------------
# Install


def _install(
    project: NodeProject,
    sync: SyncResult,
    tool: Tool,
    env: dict[str, str],
    platform: str,
    node: NodeRuntime,
    stamps: Path,
    report: Reporter,
) -> bool:
    log = report.log
    stamp_path = stamps / "install.json"
    files = _install_inputs(sync.root)
    inputs = {
        "version": _STAMP_VERSION,
        "tool": f"{project.manager.name}@{tool.version}",
        "node": node.version,
        "platform": platform,
        "files": files,
    }
    previous = _read_json(stamp_path)
    if previous == {**inputs, "node_modules": _node_modules_fingerprint(sync.root)}:
        log("dependencies unchanged since the last install: nothing to install")
        return False
    # Only manifests or the lockfile changed since an install that finished, with the same
    # tool, Node and platform (native addons stay built for them): update it in place.
    update = (
        tool.update_all()
        if isinstance(previous, dict)
        and all(previous.get(key) == value for key, value in inputs.items() if key != "files")
        else None
    )
    stamp_path.unlink(missing_ok=True)
    removed = remove_outputs(sync.root, stamps / "staging.json")
    if removed:
        log(f"removed {removed} path(s) an earlier install or build wrote")
    if _nothing_to_install(sync.root, files):
        log("no dependencies and no install scripts: nothing to install")
        _write_json(stamp_path, {**inputs, "node_modules": _node_modules_fingerprint(sync.root)})
        return False
    command = tool.install_all()
    if project.lockfile is None:
        log(
            "warning: no lockfile: dependencies are resolved afresh on every install; "
            "commit package-lock.json for reproducible deploys"
        )
    with report.step(f"installing dependencies with {project.manager.name} (Node {node.version})"):
        lockfile = sync.root / project.lockfile.name if project.lockfile else None
        if update is None or lockfile is None or not _updated(update, lockfile, env, node, report):
            _run_install(command, sync.root, env, node, report)
    _write_json(stamp_path, {**inputs, "node_modules": _node_modules_fingerprint(sync.root)})
    return True


def _updated(
    command: list[str], lockfile: Path, env: dict[str, str], node: NodeRuntime, report: Reporter
) -> bool:
    """Whether ``command`` (an in-place install) left the tree the lockfile describes: it
    succeeded and the lockfile is as it was. Otherwise the lockfile is put back, and the
    caller installs afresh, frozen, which installs exactly that tree or refuses the mismatch
    with the tool's own reason."""
    before = lockfile.read_bytes()
    try:
        _run_install(command, lockfile.parent, env, node, report)
    except BuildError as error:
        report.detail(f"{error}; installing afresh")
        succeeded = False
    else:
        succeeded = True
    if lockfile.read_bytes() != before:
        write_atomic(lockfile, before)
        report.detail(f"`{' '.join(command)}` changed {lockfile.name}; installing afresh")
        return False
    return succeeded


def _run_install(
    command: list[str], root: Path, env: dict[str, str], node: NodeRuntime, report: Reporter
) -> None:
    report.detail(f"running {' '.join(command)} under Node {node.version}")
    run_tool(command, root, env, report.detail, what=f"`{' '.join(command)}`")


def _install_for_target(
    project: NodeProject,
    staging: Path,
    target: Path,
    tool: Tool,
    env: dict[str, str],
    platform: str,
    node: NodeRuntime,
    stamps: Path,
    report: Reporter,
) -> None:
    """Install the production dependencies for ``platform`` into ``target``: a copy of
    the workspace's manifests, lockfile and package-manager configuration only."""
    log = report.log
    stamp_path = stamps / f"{target.name}.json"
    files = _install_inputs(staging)
    inputs = {
        "version": _STAMP_VERSION,
        "tool": f"{project.manager.name}@{tool.version}",
        "node": node.version,
        "files": files,
    }
    if _read_json(stamp_path) == {**inputs, "node_modules": _node_modules_fingerprint(target)}:
        log(f"dependencies for {platform} unchanged: nothing to install")
        return
    stamp_path.unlink(missing_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    for relative in files:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(staging / relative, target / relative)
    yarn_dir = staging / ".yarn"
    for kept in ("releases", "plugins", "patches"):
        if (yarn_dir / kept).is_dir():
            shutil.copytree(yarn_dir / kept, target / ".yarn" / kept, symlinks=True)
    target_configuration(project.manager, target, platform)
    command = tool.install_for_target(platform)
    report.detail(f"running {' '.join(command)}")
    with report.step(f"installing the production dependencies for {platform}"):
        run_tool(command, target, env, report.detail, what=f"`{' '.join(command)}`")
    if _has_install_scripts(target):
        log(
            f"warning: install scripts were not run for {platform} (they would build for "
            "this machine); native addons they build are checked below"
        )
    _write_json(stamp_path, {**inputs, "node_modules": _node_modules_fingerprint(target)})


def _has_install_scripts(root: Path) -> bool:
    lock = _read_json(root / "node_modules" / ".package-lock.json") or {}
    packages = lock.get("packages") if isinstance(lock, dict) else None
    return isinstance(packages, dict) and any(
        isinstance(info, dict) and info.get("hasInstallScript") for info in packages.values()
    )


_INSTALL_SCRIPTS = ("preinstall", "install", "postinstall", "prepare")
_DEPENDENCY_FIELDS = ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies")


def _nothing_to_install(root: Path, files: dict[str, str]) -> bool:
    """No package.json declares a dependency or an install script, and no addon is
    compiled at install time: running the package manager would only cost time."""
    for relative in files:
        name = Path(relative).name
        if name == "binding.gyp":
            return False
        if name != "package.json":
            continue
        manifest = _read_json(root / relative)
        if not isinstance(manifest, dict):
            return False
        scripts = manifest.get("scripts") or {}
        if any(manifest.get(field) for field in _DEPENDENCY_FIELDS) or manifest.get("workspaces"):
            return False
        if isinstance(scripts, dict) and any(script in scripts for script in _INSTALL_SCRIPTS):
            return False
    return True


def _install_inputs(root: Path) -> dict[str, str]:
    """sha256 of every file that decides an install: manifests, lockfiles, configs."""
    found: dict[str, str] = {}
    stack = [root]
    names = {"package.json", "binding.gyp", *INSTALL_CONFIG_FILES}
    lockfiles = {name for name, _ in LOCKFILES}
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in ("node_modules", ".git", ".aether"):
                    stack.append(Path(entry.path))
            elif entry.name in names or (directory == root and entry.name in lockfiles):
                relative = os.path.relpath(entry.path, root)
                found[relative] = hashlib.sha256(Path(entry.path).read_bytes()).hexdigest()
    return dict(sorted(found.items()))


def _node_modules_fingerprint(root: Path) -> str | None:
    """Cheap evidence that node_modules is what the last install left: the stats of its
    top-level entries and scoped packages (an added, removed or reinstalled package
    changes a directory's mtime there)."""
    modules = root / "node_modules"
    if not modules.is_dir():
        return None
    digest = hashlib.sha256()
    stack = [modules]
    while stack:
        directory = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            rel = os.path.relpath(entry.path, modules)
            digest.update(f"{rel}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            if directory == modules and entry.name.startswith("@") and entry.is_dir():
                stack.append(Path(entry.path))
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# Build


def _build(
    project: NodeProject,
    sync: SyncResult,
    closure: Closure,
    tool: Tool,
    env: dict[str, str],
    stamps: Path,
    report: Reporter,
) -> bool:
    if not project.builds:
        return False
    steps: list[tuple[Path, str]] = [
        (sync.root / package.directory, " ".join(tool.run_script("build")))
        for package in closure.workspace_packages()
        if isinstance((package.manifest.get("scripts") or {}).get("build"), str)
    ]
    if project.build_command is not None:
        steps.append((sync.root / project.package_path, project.build_command))
    if not steps:
        return False
    stamp_path = stamps / "build.json"
    inputs = {
        "version": _STAMP_VERSION,
        "steps": [[os.path.relpath(cwd, sync.root), command] for cwd, command in steps],
        "sources": _read_json(stamps / "staging.json"),
        "install": _read_json(stamps / "install.json"),
    }
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    if (_read_json(stamp_path) or {}).get("inputs") == digest:
        report.log("sources unchanged since the last build: nothing to build")
        return False
    stamp_path.unlink(missing_ok=True)
    build_env = {**env, "NODE_ENV": "production"}
    for cwd, command in steps:
        where = os.path.relpath(cwd, sync.root)
        label = f"building: {command}" + (f" (in {where})" if where != "." else "")
        with report.step(label):
            run_tool(
                ["sh", "-c", command], cwd, build_env, report.detail, what=f"the build `{command}`"
            )
    _write_json(stamp_path, {"inputs": digest})
    return True


def run_tool(command: list[str], cwd: Path, env: dict[str, str], echo: Log, *, what: str) -> None:
    """Run a package manager or build; its output goes to ``echo`` line by line."""
    tail: deque[str] = deque(maxlen=200)
    try:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
            errors="replace",
        )
    except FileNotFoundError:
        raise BuildError(f"could not run {command[0]}: not found on PATH") from None
    assert proc.stdout is not None
    name = Path(command[0]).name if command[0] != "sh" else "build"
    for raw in proc.stdout:
        line = _ANSI.sub("", raw.rstrip())
        if line:
            echo(f"{name}: {line}")
            tail.append(line)
    if proc.wait() != 0:
        details = meaningful_tail(list(tail))
        raise BuildError(f"{what} failed with exit code {proc.returncode}", details)


def meaningful_tail(lines: list[str], limit: int = _TAIL_LINES) -> list[str]:
    """The last lines worth reading: without log-file pointers, progress and blanks, and
    without the usage text npm prints after the reason of a refused command."""
    for index, line in enumerate(lines):
        if line.strip() in _NPM_USAGE:
            # The command's one-line description sits between npm's blank line and "Usage:".
            cut = index
            while cut > 0 and lines[cut - 1].strip() in _NPM_BLANK:
                cut -= 1
            while cut > 0 and lines[cut - 1].strip() not in _NPM_BLANK:
                cut -= 1
            lines = lines[:cut]
            break
    kept = [line for line in lines if not _NOISE.search(line)]
    return kept[-limit:]


_NPM_USAGE = frozenset({"npm error Usage:", "npm ERR! Usage:"})
_NPM_BLANK = frozenset({"npm error", "npm ERR!"})


# ---------------------------------------------------------------------------
# Checks on what will be packed


def _native_addons(
    closure: Closure, entries: list[Entry], platform: str, project: NodeProject
) -> list[NativeAddon]:
    owners = sorted(closure.packages.values(), key=lambda p: len(p.directory), reverse=True)
    addons = []
    for entry in entries:
        if entry.kind != "file" or not entry.path.endswith(".node"):
            continue
        owner = next(
            (p for p in owners if not p.directory or entry.path.startswith(p.directory + "/")),
            closure.app,
        )
        addons.append(
            check_addon(
                Path(entry.source),
                shown=entry.path,
                package=owner.name,
                platform=platform,
                node=project.node.line,
            )
        )
    return addons


def _checked_start_command(project: NodeProject, root: Path, entries: list[Entry], log: Log) -> str:
    """The start command, once it is clear that the artifact has what it runs."""
    paths = {entry.path for entry in entries}
    scripts = project.package.get("scripts") or {}
    command = project.start_command
    script = scripts.get("start") if command == "npm start" else command
    if not isinstance(script, str):
        return command
    try:
        words = [
            w for w in shlex.split(script) if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", w)
        ]
    except ValueError:
        return command
    if not words:
        return command
    base = project.package_path
    program = words[0]
    if program == "node":
        target = _node_script(words[1:])
        if (
            target is not None
            and not target.startswith("/")
            and not _has_module(paths, base, target)
        ):
            raise BuildError(
                f"the start command runs `{script}`, but the artifact has no {target}"
                + (
                    ": does the build write it? (check its output directory)"
                    if project.build_command
                    else ": add a build (scripts.build) or fix the start command"
                )
            )
        return command
    if "/" in program or program in _SHELL_WORDS:
        return command
    in_artifact = _bin_in(paths, base, program)
    installed = (
        root / (base + "/" if base else "") / "node_modules" / ".bin" / program
    ).exists() or (root / "node_modules" / ".bin" / program).exists()
    if in_artifact or not installed:
        return command  # a command of the artifact, or of the system (sh, npm)
    if command == "npm start" and isinstance(scripts.get("start:prod"), str):
        log(
            f"scripts.start runs `{program}`, which only a devDependency provides: "
            "starting with `npm run start:prod` instead"
        )
        return "npm run start:prod"
    raise BuildError(
        f"the start command runs `{program}`, which only a devDependency provides and is not "
        'in the artifact: make it start the built app (for example "start": "node dist/main.js") '
        "or pass --start-command"
    )


# node's options that take the next word as their value, and those that run no file.
_NODE_VALUE_OPTIONS = frozenset(
    {
        "-r",
        "--require",
        "--import",
        "--loader",
        "--experimental-loader",
        "-C",
        "--conditions",
        "--env-file",
        "--title",
        "--inspect-port",
        "--input-type",
        "--stack-size",
    }
)
_NODE_NO_SCRIPT = frozenset(
    {"-e", "--eval", "-p", "--print", "-i", "--interactive", "-v", "--version", "-h", "--help", "-"}
)


def _node_script(arguments: list[str]) -> str | None:
    """The script file ``node <arguments>`` runs, if it runs one."""
    words = iter(arguments)
    for word in words:
        if word in _NODE_NO_SCRIPT:
            return None
        if word in _NODE_VALUE_OPTIONS:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


_SHELL_WORDS = frozenset({"npm", "npx", "pnpm", "yarn", "sh", "bash", "exec", "cd", "env", "node"})


def _has_module(paths: set[str], base: str, target: str) -> bool:
    relative = posixpath.normpath(f"{base}/{target}" if base else target)
    return any(relative + suffix in paths for suffix in _START_EXTENSIONS)


def _bin_in(paths: set[str], base: str, program: str) -> bool:
    here = f"{base}/node_modules/.bin/{program}" if base else f"node_modules/.bin/{program}"
    return here in paths or f"node_modules/.bin/{program}" in paths


# ---------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, sort_keys=True, indent=1) + "\n")
