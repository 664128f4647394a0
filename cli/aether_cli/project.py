"""Finding out what a Node.js project is, and installing its production dependencies.

Decisions (the CLI documents them to users):

* ``package.json`` is required and must hold a JSON object.
* Node major: Aether runs 18, 20 and 22. ``engines.node`` is a semver range; the
  highest supported major it allows wins (as Heroku and Netlify resolve it). A
  ``.nvmrc`` (``20``, ``v20.11.1``, ``lts/iron``, ``lts/*``) pins a major; with both,
  the ``.nvmrc`` major must satisfy ``engines.node``. Neither → 20.
* Start command: ``scripts.start`` → ``npm start``; else ``node server.js`` when
  ``server.js`` exists (npm's own fallback for ``npm start``); else ``node <main>``
  when ``main`` names an existing file; else :class:`ProjectError` with a hint.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUPPORTED_NODE_MAJORS: tuple[int, ...] = (18, 20, 22)
DEFAULT_NODE_MAJOR = 20

# Our install stamp lives in node_modules so deleting node_modules deletes it too;
# pack.py leaves it out of the archive (its fingerprint holds mtimes).
INSTALL_STAMP_NAME = ".aether-install.json"
_STAMP_VERSION = 1

# nvm's LTS code names for the majors we run.
_LTS_CODENAMES = {"hydrogen": 18, "iron": 20, "jod": 22}


class ProjectError(Exception):
    """The directory is not a deployable Node.js project (the CLI exits 10)."""


class ToolMissingError(Exception):
    """A tool Aether needs on this machine (npm) is not on PATH (the CLI exits 10)."""


class InstallError(ProjectError):
    """``npm ci`` / ``npm install`` failed; the message carries npm's last lines."""


@dataclass(frozen=True)
class NodeProject:
    root: Path
    name: str | None
    node_major: int
    start_command: str
    lockfile: Path | None
    # How node_major was chosen, for `--dry-run` output and error messages.
    node_major_source: str = "default"


def detect_project(root: Path, *, start_command: str | None = None) -> NodeProject:
    """Read ``root/package.json`` (and ``.nvmrc``) into a :class:`NodeProject`.

    ``start_command`` overrides detection (``--start-command``), so a project with
    no start script can still be deployed.
    """
    root = Path(root).resolve()
    package = _read_package_json(root)

    name = package.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ProjectError(f'{root / "package.json"}: "name" must be a non-empty string')

    node_major, source = _node_major(root, package)
    command = start_command if start_command is not None else _start_command(root, package)

    lockfile: Path | None = None
    # npm-shrinkwrap.json wins over package-lock.json, as in npm itself.
    for candidate in ("npm-shrinkwrap.json", "package-lock.json"):
        if (root / candidate).is_file():
            lockfile = root / candidate
            break

    return NodeProject(
        root=root,
        name=name,
        node_major=node_major,
        start_command=command,
        lockfile=lockfile,
        node_major_source=source,
    )


def _read_package_json(root: Path) -> dict[str, Any]:
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


def _start_command(root: Path, package: dict[str, Any]) -> str:
    scripts = package.get("scripts") or {}
    start = scripts.get("start")
    if isinstance(start, str) and start.strip():
        return "npm start"
    if (root / "server.js").is_file():
        return "node server.js"
    main = package.get("main")
    if isinstance(main, str) and main.strip() and (root / main).is_file():
        return f"node {main}"
    raise ProjectError(
        f'cannot tell how to start {root}: add "scripts": {{"start": "node server.js"}} '
        "to package.json, or pass --start-command"
    )


# ---------------------------------------------------------------------------
# Node major: engines.node (a semver range) and .nvmrc


def _node_major(root: Path, package: dict[str, Any]) -> tuple[int, str]:
    engines = package.get("engines") or {}
    engine_range = engines.get("node")
    if engine_range is not None and not isinstance(engine_range, str):
        raise ProjectError('package.json: "engines.node" must be a string such as ">=20"')

    nvmrc_major: int | None = None
    nvmrc = root / ".nvmrc"
    if nvmrc.is_file():
        nvmrc_major = parse_nvmrc(nvmrc.read_text(encoding="utf-8", errors="replace"))

    if engine_range is None or not engine_range.strip():
        if nvmrc_major is not None:
            return nvmrc_major, ".nvmrc"
        return DEFAULT_NODE_MAJOR, "default"

    allowed = majors_allowed(engine_range)
    supported = [m for m in SUPPORTED_NODE_MAJORS if m in allowed]
    if not supported:
        raise ProjectError(
            f'engines.node "{engine_range}" allows no Node major that Aether runs '
            f"({', '.join(map(str, SUPPORTED_NODE_MAJORS))})"
        )
    if nvmrc_major is not None:
        if nvmrc_major not in supported:
            raise ProjectError(
                f'.nvmrc asks for Node {nvmrc_major}, which engines.node "{engine_range}" '
                "does not allow: make them agree"
            )
        return nvmrc_major, ".nvmrc"
    local = local_node_major()
    if local in supported:
        # node_modules was installed by this Node: native addons match its ABI.
        return local, "engines.node"
    return max(supported), "engines.node"


def local_node_major() -> int | None:
    """The major of the ``node`` on PATH, or None when there is none."""
    node = shutil.which("node")
    if node is None:
        return None
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v(\d+)\.", version.strip())
    return int(match.group(1)) if match else None


def parse_nvmrc(text: str) -> int:
    """The Node major an ``.nvmrc`` names; :class:`ProjectError` when unsupported."""
    # nvm reads the first line; comments after '#' are allowed by newer nvm.
    lines = text.strip().splitlines()
    value = lines[0].split("#", 1)[0].strip().lower() if lines else ""
    supported = ", ".join(map(str, SUPPORTED_NODE_MAJORS))
    major: int | None = None
    if value.startswith("lts/"):
        codename = value[4:]
        major = max(SUPPORTED_NODE_MAJORS) if codename == "*" else _LTS_CODENAMES.get(codename)
    else:
        match = re.fullmatch(r"v?(\d+)(?:\.(?:\d+|x))?(?:\.(?:\d+|x))?", value)
        if match:
            major = int(match.group(1))
    if major is None:
        raise ProjectError(
            f'.nvmrc says "{value}": Aether understands a version ("20", "v20.11.1") '
            f"or an LTS name (lts/hydrogen, lts/iron, lts/jod, lts/*) of Node {supported}"
        )
    if major not in SUPPORTED_NODE_MAJORS:
        raise ProjectError(f".nvmrc asks for Node {major}; Aether runs Node {supported}")
    return major


_Version = tuple[int, int, int]
_INF: _Version = (1 << 30, 0, 0)
_PARTIAL = re.compile(r"v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:[-+][0-9A-Za-z.+-]*)?")
_COMPARATOR = re.compile(r"(<=|>=|<|>|=|\^|~>?)?\s*(\S+)")


def majors_allowed(
    range_text: str, *, candidates: tuple[int, ...] = tuple(range(0, 64))
) -> set[int]:
    """The majors in ``candidates`` for which some version satisfies the npm range.

    Supports what package.json files use: ``||``, space-separated comparators
    (AND), ``>= > <= < =``, ``^``, ``~``, x-ranges (``20``, ``20.x``, ``*``) and
    hyphen ranges (``18 - 20``). Prerelease tags are ignored. Anything else raises
    :class:`ProjectError`.
    """
    allowed: set[int] = set()
    for alternative in range_text.split("||"):
        low, high = _alternative_interval(alternative.strip(), range_text)
        for major in candidates:
            # Does [low, high) meet [major.0.0, major+1.0.0)?
            if low < (major + 1, 0, 0) and high > (major, 0, 0):
                allowed.add(major)
    return allowed


def _alternative_interval(text: str, whole: str) -> tuple[_Version, _Version]:
    low: _Version = (0, 0, 0)
    high: _Version = _INF
    hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", text)
    if hyphen:
        first = _partial(hyphen.group(1), whole)
        last = _partial(hyphen.group(2), whole)
        return _lower_bound(first), _upper_of_partial(last)
    # "> = 20" and ">=20" are the same comparator: glue operators to their version.
    text = re.sub(r"(<=|>=|<|>|=|\^|~>?)\s+", r"\1", text)
    for token in text.split():
        match = _COMPARATOR.fullmatch(token)
        if not match:
            raise _bad_range(whole)
        op, version = match.group(1) or "", match.group(2)
        parts = _partial(version, whole)
        lo, hi = _comparator_interval(op, parts)
        low, high = max(low, lo), min(high, hi)
    return low, high


def _partial(text: str, whole: str) -> list[int | None]:
    match = _PARTIAL.fullmatch(text)
    if not match:
        raise _bad_range(whole)
    parts: list[int | None] = []
    for group in match.groups():
        if group is None or group in ("x", "X", "*"):
            break  # everything after a wildcard is a wildcard too
        parts.append(int(group))
    return parts


def _lower_bound(parts: list[int | None]) -> _Version:
    padded = [p or 0 for p in parts] + [0, 0, 0]
    return (padded[0], padded[1], padded[2])


def _upper_of_partial(parts: list[int | None]) -> _Version:
    """Exclusive upper bound of the versions a partial version stands for."""
    if not parts:
        return _INF
    if len(parts) == 1:
        return (int(parts[0] or 0) + 1, 0, 0)
    if len(parts) == 2:
        return (int(parts[0] or 0), int(parts[1] or 0) + 1, 0)
    return (int(parts[0] or 0), int(parts[1] or 0), int(parts[2] or 0) + 1)


def _comparator_interval(op: str, parts: list[int | None]) -> tuple[_Version, _Version]:
    low = _lower_bound(parts)
    if op in ("", "="):
        return low, _upper_of_partial(parts)
    if op == ">=":
        return low, _INF
    if op == ">":
        return _upper_of_partial(parts), _INF
    if op == "<":
        return (0, 0, 0), low if parts else (0, 0, 0)
    if op == "<=":
        return (0, 0, 0), _upper_of_partial(parts)
    if op in ("~", "~>"):
        return low, _upper_of_partial(parts[:2])
    # "^": changes that do not modify the left-most non-zero part.
    if not parts:
        return low, _INF
    major, minor, patch = low
    if major > 0 or len(parts) == 1:
        return low, (major + 1, 0, 0)
    if minor > 0 or len(parts) == 2:
        return low, (0, minor + 1, 0)
    return low, (0, 0, patch + 1)


def _bad_range(whole: str) -> ProjectError:
    return ProjectError(
        f'engines.node "{whole}" is not a version range Aether understands '
        '(examples: ">=20", "20.x", "^22.1.0", "18 || 20")'
    )


# ---------------------------------------------------------------------------
# Installing production dependencies


def install_production_dependencies(project: NodeProject, *, log: Callable[[str], None]) -> bool:
    """Install what ``npm start`` needs into ``node_modules``; False when skipped.

    ``npm ci --omit=dev`` with a lockfile; otherwise ``npm install --omit=dev
    --no-package-lock`` (we do not write a lockfile into the user's project behind
    their back). Skipped when the stamp left by the last install still matches the
    lockfile, package.json, the Node major and a fingerprint of ``node_modules``.
    """
    npm = find_npm()
    stamp_path = project.root / "node_modules" / INSTALL_STAMP_NAME
    if project.lockfile is not None:
        command = [npm, "ci", "--omit=dev", "--no-audit", "--no-fund"]
    else:
        command = [npm, "install", "--omit=dev", "--no-package-lock", "--no-audit", "--no-fund"]
        log(
            "warning: no package-lock.json: dependencies are resolved afresh on every "
            "install; commit a lockfile for reproducible deploys"
        )

    wanted = _stamp_inputs(project, command[1])
    if _read_stamp(stamp_path) == {
        **wanted,
        "node_modules": _node_modules_fingerprint(project.root),
    }:
        log("dependencies unchanged since the last install: skipping npm")
        return False

    log(f"installing production dependencies: {' '.join(['npm', *command[1:]])}")
    _run_npm(command, project.root, log)

    stamp = {**wanted, "node_modules": _node_modules_fingerprint(project.root)}
    stamp_path.parent.mkdir(exist_ok=True)  # a project without dependencies gets none
    tmp = stamp_path.with_name(stamp_path.name + ".tmp")
    tmp.write_text(json.dumps(stamp, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    tmp.replace(stamp_path)
    return True


def find_npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise ToolMissingError(
            "npm was not found on PATH: install Node.js (which ships npm) from "
            "https://nodejs.org or with nvm, then run this again"
        )
    return npm


def _run_npm(command: list[str], cwd: Path, log: Callable[[str], None]) -> None:
    tail: list[str] = []
    # npm's output goes to `log` line by line (stderr in the CLI): stdout may be
    # reserved for one JSON object, and the user should see progress as it happens.
    env = {**os.environ, "NO_UPDATE_NOTIFIER": "1", "npm_config_update_notifier": "false"}
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
        raise ToolMissingError(f"could not run {command[0]}") from None
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if line:
            log(f"npm: {line}")
            tail = [*tail[-19:], line]
    if proc.wait() != 0:
        details = "\n".join(tail[-8:])
        raise InstallError(
            f"`{' '.join(['npm', *command[1:]])}` failed with exit code {proc.returncode}"
            + (f":\n{details}" if details else "")
        )


def _sha256_file(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _stamp_inputs(project: NodeProject, mode: str) -> dict[str, Any]:
    return {
        "version": _STAMP_VERSION,
        "mode": mode,
        "node_major": project.node_major,
        "lockfile": project.lockfile.name if project.lockfile else None,
        "lockfile_sha256": _sha256_file(project.lockfile) if project.lockfile else None,
        "package_json_sha256": _sha256_file(project.root / "package.json"),
    }


def _read_stamp(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _node_modules_fingerprint(root: Path) -> str | None:
    """Cheap evidence that node_modules is what the last install left.

    Stats of node_modules, its top-level entries and scoped packages (@scope/*),
    plus npm's hidden lockfile: a removed, added or reinstalled package changes a
    directory mtime there. An edit deep inside a package is not noticed; deleting
    node_modules (or its stamp) forces a reinstall.
    """
    modules = root / "node_modules"
    digest = hashlib.sha256()
    if not modules.is_dir():
        return None
    # node_modules' own mtime is left out: writing our stamp into it changes it.
    stack = [modules]
    while stack:
        directory = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name in (INSTALL_STAMP_NAME, INSTALL_STAMP_NAME + ".tmp"):
                continue
            st = entry.stat(follow_symlinks=False)
            rel = os.path.relpath(entry.path, modules)
            digest.update(f"{rel}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            if (
                directory == modules
                and entry.name.startswith("@")
                and entry.is_dir(follow_symlinks=False)
            ):
                stack.append(Path(entry.path))
    hidden = _sha256_file(modules / ".package-lock.json")
    digest.update(f"hidden-lockfile\0{hidden}\n".encode())
    return digest.hexdigest()
