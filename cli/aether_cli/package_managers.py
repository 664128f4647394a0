"""npm, pnpm and Yarn: which one a project uses, and the commands Aether runs with it.

The lockfile picks the package manager, as the tools themselves agree:
``npm-shrinkwrap.json`` / ``package-lock.json`` → npm, ``pnpm-lock.yaml`` → pnpm,
``yarn.lock`` → Yarn (classic 1.x, or Berry when the lockfile has ``__metadata``).
``packageManager`` in package.json (``pnpm@9.12.0``) pins the version and settles a
tie between several lockfiles. Installs are frozen: a lockfile that does not match
package.json fails with the tool's own reason, never a silent re-resolve.

A pinned version that is not the one on PATH is installed once from the npm
registry, by npm itself (so the user's registry, proxy and auth settings apply),
into Aether's cache.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aether_cli.contract import PLATFORMS

Name = Literal["npm", "pnpm", "yarn"]
LOCKFILES: tuple[tuple[str, Name], ...] = (
    ("npm-shrinkwrap.json", "npm"),  # wins over package-lock.json, as in npm
    ("package-lock.json", "npm"),
    ("pnpm-lock.yaml", "pnpm"),
    ("yarn.lock", "yarn"),
)
# Files besides lockfile and package.json that change what an install produces.
INSTALL_CONFIG_FILES = (
    ".npmrc",
    ".yarnrc",
    ".yarnrc.yml",
    "pnpm-workspace.yaml",
    ".pnpmfile.cjs",
)
_PACKAGE_MANAGER_FIELD = re.compile(r"(npm|pnpm|yarn)@(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)(\+.*)?")
# Where a pinned tool comes from on the registry.
_REGISTRY_PACKAGES = {"npm": "npm", "pnpm": "pnpm", "yarn": "yarn", "berry": "@yarnpkg/cli-dist"}
_TOOL_TIMEOUT = 300


class PackageManagerError(Exception):
    """The project's package manager cannot be determined or obtained (the CLI exits 10)."""


@dataclass(frozen=True)
class PackageManager:
    name: Name
    lockfile: Path | None  # in the workspace root; None only for npm without one
    pinned: str | None = None  # version from package.json's packageManager
    berry: bool = False  # Yarn 2+ (lockfile with __metadata, or pinned >= 2)

    @property
    def label(self) -> str:
        flavour = " (Berry)" if self.berry else " (classic)" if self.name == "yarn" else ""
        return self.name + flavour + (f" {self.pinned}" if self.pinned else "")


def detect_package_manager(workspace_root: Path, package: dict[str, Any]) -> PackageManager:
    """The package manager of the workspace whose root package.json is ``package``."""
    pinned_name, pinned_version = _parse_package_manager_field(package.get("packageManager"))
    found = [
        (workspace_root / name, tool)
        for name, tool in LOCKFILES
        if (workspace_root / name).is_file()
    ]
    if found and found[0][0].name == "npm-shrinkwrap.json":
        found = [f for f in found if f[0].name != "package-lock.json"]
    tools = {tool for _, tool in found}
    if pinned_name is not None:
        matching = [f for f in found if f[1] == pinned_name]
        if found and not matching:
            raise PackageManagerError(
                f'package.json pins "packageManager": "{package["packageManager"]}" but the '
                f"lockfile is {found[0][0].name}: make them agree"
            )
        lockfile = matching[0][0] if matching else None
        name: Name = pinned_name
    elif len(tools) > 1:
        names = " and ".join(path.name for path, _ in found)
        raise PackageManagerError(
            f"{workspace_root} has {names}: remove the lockfile of the package manager you do "
            'not use, or name yours in package.json ("packageManager": "pnpm@9.12.0")'
        )
    elif found:
        lockfile, name = found[0]
    else:
        lockfile, name = None, "npm"
    if lockfile is None and name != "npm":
        raise PackageManagerError(
            f"{workspace_root} has no {_lockfile_name(name)}: run `{name} install` and commit "
            "the lockfile, so the deploy installs exactly what you tested"
        )
    berry = name == "yarn" and (
        (pinned_version is not None and int(pinned_version.split(".")[0]) >= 2)
        or (lockfile is not None and _is_berry_lockfile(lockfile))
    )
    return PackageManager(name, lockfile, pinned_version, berry)


def _lockfile_name(name: Name) -> str:
    return next(file for file, tool in LOCKFILES if tool == name and file != "npm-shrinkwrap.json")


def _parse_package_manager_field(value: Any) -> tuple[Name | None, str | None]:
    if value is None:
        return None, None
    match = _PACKAGE_MANAGER_FIELD.fullmatch(value) if isinstance(value, str) else None
    if not match:
        raise PackageManagerError(
            f'package.json: "packageManager" is {json.dumps(value)}; expected name@x.y.z '
            'with name npm, pnpm or yarn (for example "pnpm@9.12.0")'
        )
    name: Name = match.group(1)  # type: ignore[assignment]
    return name, match.group(2)


def _is_berry_lockfile(path: Path) -> bool:
    with path.open("r", encoding="utf-8", errors="replace") as f:
        head = f.read(4096)
    return "__metadata:" in head


def check_linker(workspace_root: Path, manager: PackageManager) -> None:
    """Refuse Yarn Plug'n'Play: an artifact needs a node_modules that Node resolves alone."""
    if not manager.berry:
        return
    linker = yaml_scalar(_read_text(workspace_root / ".yarnrc.yml"), "nodeLinker")
    if linker not in ("node-modules", "pnpm"):
        raise PackageManagerError(
            f"{workspace_root} uses Yarn Plug'n'Play (nodeLinker: {linker or 'pnp'}), which "
            "Aether does not deploy: add `nodeLinker: node-modules` to .yarnrc.yml and run "
            "`yarn install`"
        )


# ---------------------------------------------------------------------------
# Commands


@dataclass(frozen=True)
class Tool:
    """How to run a package manager here: the argv prefix and its version."""

    manager: PackageManager
    argv: tuple[str, ...]
    version: str

    def install_all(self) -> list[str]:
        """Install every dependency (dev included) from the lockfile, frozen."""
        name = self.manager.name
        if name == "npm":
            if self.manager.lockfile is None:
                return [*self.argv, "install", "--include=dev", "--no-package-lock", *_NPM_QUIET]
            return [*self.argv, "ci", "--include=dev", *_NPM_QUIET]
        if name == "pnpm":
            return [*self.argv, "install", "--frozen-lockfile", "--reporter=append-only"]
        if self.manager.berry:
            return [*self.argv, "install", "--immutable"]
        return [
            *self.argv,
            "install",
            "--frozen-lockfile",
            "--production=false",
            "--non-interactive",
            "--no-progress",
        ]

    def update_all(self) -> list[str] | None:
        """Bring an earlier complete install of every dependency up to the lockfile, changing
        only what changed; None where ``install_all`` already does (pnpm, Yarn). npm's
        ``ci`` removes node_modules and installs everything again; its ``install`` reifies
        the lockfile's tree in place, but may rewrite the lockfile instead of refusing a
        mismatch: the caller keeps its tree only if the lockfile is unchanged."""
        if self.manager.name != "npm" or self.manager.lockfile is None:
            return None
        return [*self.argv, "install", "--include=dev", *_NPM_QUIET]

    def install_for_target(self, platform: str) -> list[str]:
        """Production dependencies for another platform than this machine's, without
        running install scripts (they would build for this machine). pnpm and Berry read
        the platform from the configuration :func:`target_configuration` writes; Yarn 1
        installs every platform's optional packages and the closure keeps the target's."""
        os_name, arch = platform.split("/")
        name = self.manager.name
        if name == "npm":
            npm_platform = [f"--os={os_name}", f"--cpu={_NODE_ARCH[arch]}", "--libc=glibc"]
            if self.manager.lockfile is None:
                return [
                    *self.argv,
                    "install",
                    "--omit=dev",
                    "--no-package-lock",
                    "--ignore-scripts",
                    *npm_platform,
                    *_NPM_QUIET,
                ]
            return [*self.argv, "ci", "--omit=dev", "--ignore-scripts", *npm_platform, *_NPM_QUIET]
        if name == "pnpm":
            return [
                *self.argv,
                "install",
                "--frozen-lockfile",
                "--prod",
                "--ignore-scripts",
                "--reporter=append-only",
            ]
        if self.manager.berry:
            return [*self.argv, "install", "--immutable", "--mode=skip-build"]
        return [
            *self.argv,
            "install",
            "--frozen-lockfile",
            "--ignore-platform",
            "--ignore-scripts",
            "--non-interactive",
            "--no-progress",
        ]

    def run_script(self, script: str) -> list[str]:
        return [*self.argv, "run", script]


_NPM_QUIET = ("--no-audit", "--no-fund", "--loglevel=warn")
# Docker's architecture names → Node's process.arch.
_NODE_ARCH = {"amd64": "x64", "arm64": "arm64"}
assert set(_NODE_ARCH) == {p.split("/")[1] for p in PLATFORMS}


def target_configuration(manager: PackageManager, root: Path, platform: str) -> None:
    """Tell pnpm or Berry, in the target install's own copy of their configuration, which
    platform to fetch per-platform packages for."""
    os_name, arch = platform.split("/")
    block = (
        "supportedArchitectures:\n"
        f"  os: [{os_name}]\n  cpu: [{_NODE_ARCH[arch]}]\n  libc: [glibc]\n"
    )
    if manager.name == "pnpm":
        path = root / "pnpm-workspace.yaml"
    elif manager.berry:
        path = root / ".yarnrc.yml"
    else:
        return
    text = _read_text(path)
    if "supportedArchitectures:" in text:
        raise PackageManagerError(
            f"{path.name} sets supportedArchitectures itself: remove it, Aether sets it "
            f"for the target platform ({platform})"
        )
    path.write_text(text + ("\n" if text and not text.endswith("\n") else "") + block)


def node_arch(platform: str) -> str:
    return _NODE_ARCH[platform.split("/")[1]]


def find_tool(
    manager: PackageManager,
    workspace_root: Path,
    *,
    env: dict[str, str],
    cache_dir: Path,
    log: Any,
) -> Tool:
    """The package manager to run: the project's yarnPath, the one on PATH when it is the
    pinned version (or nothing is pinned), else the pinned version from the registry."""
    if manager.berry:
        yarn_path = yaml_scalar(_read_text(workspace_root / ".yarnrc.yml"), "yarnPath")
        if yarn_path:
            script = (workspace_root / yarn_path).resolve()
            if not script.is_file():
                raise PackageManagerError(
                    f".yarnrc.yml names yarnPath {yarn_path}, which is missing"
                )
            argv: tuple[str, ...] = ("node", str(script))
            return Tool(manager, argv, _version_of(argv, env, cache_dir))
    if shutil.which(manager.name, path=env.get("PATH")) is not None:
        argv = (manager.name,)  # run by name: the PATH it was found on is the one used
        version = _version_of(argv, env, cache_dir)
        wanted_berry = manager.berry == (int(version.split(".")[0]) >= 2) or manager.name != "yarn"
        if (manager.pinned is None or manager.pinned == version) and wanted_berry:
            return Tool(manager, argv, version)
    if manager.pinned is None and manager.name == "npm":
        raise PackageManagerError(
            "npm was not found on PATH: install Node.js (which ships npm) from "
            "https://nodejs.org or with nvm, then run this again"
        )
    package = _REGISTRY_PACKAGES["berry" if manager.berry else manager.name]
    version = manager.pinned or _unpinned_version(manager)
    home = _install_from_registry(package, version, cache_dir=cache_dir, env=env, log=log)
    script = _bin_script(home / "node_modules" / package)
    argv = ("node", str(script))
    return Tool(manager, argv, _version_of(argv, env, cache_dir))


# pnpm's lockfile format → the pnpm major that reads it without rewriting it.
_PNPM_FOR_LOCKFILE = {"5": "7", "6": "8", "9": "10"}


def _unpinned_version(manager: PackageManager) -> str:
    """A version range for a package manager the project does not pin: the major its
    lockfile was written by (for pnpm, whose lockfile format changes with majors)."""
    if manager.berry:
        return "4"
    if manager.name == "yarn":
        return "1"
    lockfile_version = yaml_scalar(
        _read_text(manager.lockfile) if manager.lockfile else "", "lockfileVersion"
    )
    major = (lockfile_version or "9").split(".")[0]
    if major not in _PNPM_FOR_LOCKFILE:
        raise PackageManagerError(
            f"pnpm-lock.yaml has lockfileVersion {lockfile_version}, which Aether cannot "
            'match to a pnpm release: pin one in package.json ("packageManager": "pnpm@10.34.9")'
        )
    return _PNPM_FOR_LOCKFILE[major]


def _install_from_registry(
    package: str, version: str, *, cache_dir: Path, env: dict[str, str], log: Any
) -> Path:
    """``package@version`` installed under ``cache_dir`` (once; later calls reuse it)."""
    home = cache_dir / "tools" / f"{package.replace('/', '+')}@{version}"
    if (home / ".complete").is_file():
        return home
    npm = shutil.which("npm", path=env.get("PATH"))
    if npm is None:
        raise PackageManagerError(f"installing {package}@{version} needs npm, which is not on PATH")
    log(f"fetching {package}@{version} from the npm registry (once)")
    home.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{home.name}.", dir=home.parent))
    try:
        result = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(staging),
                "--no-save",
                "--ignore-scripts",
                *_NPM_QUIET,
                f"{package}@{version}",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=_TOOL_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            reason = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise PackageManagerError(
                f"could not install {package}@{version} from the npm registry: "
                + " / ".join(reason)
            )
        (staging / ".complete").write_text(f"{package}@{version}\n")
        try:
            staging.rename(home)
        except OSError:
            # Another process installed the same version meanwhile: use that one.
            if not (home / ".complete").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return home


def _bin_script(package_dir: Path) -> Path:
    manifest = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
    bins = manifest.get("bin")
    if isinstance(bins, str):
        return package_dir / bins
    if isinstance(bins, dict):
        for key in ("pnpm", "yarn", "npm"):
            if isinstance(bins.get(key), str):
                return package_dir / str(bins[key])
    raise PackageManagerError(f"{package_dir}: no command in its package.json")


VERSIONS_FILE = "tool-versions.json"


def _version_of(argv: tuple[str, ...], env: dict[str, str], cache_dir: Path) -> str:
    """What ``argv --version`` prints, remembered in ``cache_dir`` by the program file's
    path, size and mtime: starting npm to ask costs a few hundred milliseconds a deploy."""
    key = _program_key(argv, env)
    versions_file = cache_dir / VERSIONS_FILE
    known = _read_versions(versions_file) if key else {}
    if key in known:
        return known[key]
    try:
        result = subprocess.run(
            [*argv, "--version"], capture_output=True, text=True, env=env, timeout=60, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise PackageManagerError(f"could not run {' '.join(argv)} --version: {exc}") from None
    version = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    if not re.fullmatch(r"\d+\.\d+\.\d+\S*", version):
        raise PackageManagerError(f"{' '.join(argv)} --version printed {version!r}")
    if key:
        from aether_cli.atomic import write_atomic

        with contextlib.suppress(OSError):  # only a cache: the next deploy asks again
            cache_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(versions_file, json.dumps({**known, key: version}, sort_keys=True))
    return version


def _read_versions(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {key: value for key, value in data.items() if isinstance(value, str)}


# Where a package manager's own code lives once links are resolved. A shim elsewhere
# (corepack's, Volta's) picks a version by the project it runs in: never remembered.
_OWN_PACKAGES = ("/node_modules/npm/", "/node_modules/pnpm/", "/node_modules/yarn/")


def _program_key(argv: tuple[str, ...], env: dict[str, str]) -> str | None:
    """The file that decides what ``argv`` prints (a script given to node, or the package
    manager's own script behind the command on PATH), with its size and mtime; None when
    the answer could depend on anything else."""
    if argv[0] == "node" and len(argv) > 1:
        program = os.path.realpath(argv[1])
    else:
        found = shutil.which(argv[0], path=env.get("PATH"))
        program = os.path.realpath(found) if found else ""
        if not any(part in program for part in _OWN_PACKAGES):
            return None
    try:
        info = Path(program).stat()
    except OSError:
        return None
    return f"{program}:{info.st_size}:{info.st_mtime_ns}"


# ---------------------------------------------------------------------------
# The little YAML these tools write: top-level scalars and one block list.


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def _unquote(value: str) -> str:
    value = value.split(" #", 1)[0].strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def yaml_scalar(text: str, key: str) -> str | None:
    """A top-level ``key: value`` of a YAML document, or None."""
    for line in text.splitlines():
        if line.startswith(f"{key}:"):
            value = _unquote(line[len(key) + 1 :])
            return value or None
    return None


def yaml_list(text: str, key: str) -> list[str] | None:
    """A top-level block or flow list of strings (``key:`` then ``  - item`` lines)."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if not line.startswith(f"{key}:"):
            continue
        rest = line[len(key) + 1 :].split(" #", 1)[0].strip()
        if rest.startswith("["):
            return [_unquote(item) for item in rest.strip("[]").split(",") if item.strip()]
        items: list[str] = []
        for item in lines[index + 1 :]:
            stripped = item.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if not item[:1].isspace() and not stripped.startswith("-"):
                break
            if stripped.startswith("- "):
                items.append(_unquote(stripped[2:]))
            elif stripped != "-":
                break
        return items
    return None


def tool_environment(base: dict[str, str]) -> dict[str, str]:
    """What every package-manager run gets: no prompts, no update checks, no telemetry.

    NODE_ENV is dropped: npm, pnpm and Yarn skip devDependencies under
    NODE_ENV=production, and the build needs them.
    """
    env = {k: v for k, v in base.items() if k != "NODE_ENV"}
    env.update(
        NO_UPDATE_NOTIFIER="1",
        npm_config_update_notifier="false",
        npm_config_fund="false",
        npm_config_audit="false",
        YARN_ENABLE_TELEMETRY="0",
        YARN_ENABLE_PROGRESS_BARS="false",
        YARN_ENABLE_INLINE_BUILDS="false",
        COREPACK_ENABLE_STRICT="0",
        DISABLE_OPENCOLLECTIVE="1",
        ADBLOCK="1",
    )
    return env
