"""The edge build with real package managers: every kind of project builds, its artifact
runs, and the developer's own tree is never touched.

Each project is a copy of one under tests/fixtures/projects, warm from ``make fixtures``
(its staging install is copied too), so no test installs from the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from infra.local.processes import free_port
from tests.projects import PROJECTS, Project

AETHER = str(Path(sys.executable).with_name("aether"))
KINDS = [kind for kind in PROJECTS if kind != "fixed-port"]

pytestmark = pytest.mark.skipif(
    not all(project.warm for project in PROJECTS.values()),
    reason="the fixture projects are not built: run `make fixtures` once",
)


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "AETHER_API_URL": "",
        "AETHER_TOKEN": "",
    }


def build(app_dir: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            AETHER,
            "--log-format",
            "text",
            "deploy",
            "--pack-only",
            "--format",
            "json",
            "--path",
            str(app_dir),
            *args,
        ],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=600,
        check=False,
    )


def built(app_dir: Path, tmp_path: Path, *args: str) -> dict[str, Any]:
    done = build(app_dir, tmp_path, *args)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    result["log"] = done.stderr
    return result


def tree_digest(root: Path) -> dict[str, str]:
    """Every path of the project outside .aether, with its content's or link's hash."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel == ".aether" or rel.startswith(".aether/") or "/.aether" in f"/{rel}":
            continue
        if path.is_symlink():
            found[rel] = "link:" + str(path.readlink())
        elif path.is_file():
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[rel] = "dir"
    return found


def run_artifact(artifact: Path, start_command: str, tmp_path: Path) -> requests.Response:
    """Extract the artifact as the fetcher does and start it as the platform would."""
    from aether_cli.nodejs import ensure_node

    app = tmp_path / "extracted"
    for layer in _layers(artifact):  # in the manifest's order, into one tree
        with tarfile.open(layer) as archive:
            archive.extractall(app, filter="data")
    node = ensure_node(24)
    port = free_port()
    env = {"PATH": f"{node.bin_dir}:{os.environ['PATH']}", "PORT": str(port), "HOME": str(tmp_path)}
    process = subprocess.Popen(
        ["sh", "-c", start_command],
        cwd=app,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                return requests.get(f"http://127.0.0.1:{port}/", timeout=2)
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read().decode() if process.stdout else ""
                    raise AssertionError(f"the app never answered:\n{output}") from None
                time.sleep(0.2)
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=10)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_of_project_builds_an_artifact_that_runs(kind: str, tmp_path: Path) -> None:
    project = PROJECTS[kind]
    app_dir = project.copy_to(tmp_path / "work")
    # The developer's own node_modules, with a dev tool in it: the build must not touch it.
    own = app_dir / "node_modules" / "typescript"
    own.mkdir(parents=True, exist_ok=True)
    (own / "package.json").write_text('{"name": "typescript", "version": "0.0.0-mine"}')
    before = tree_digest(project_root(app_dir, project))

    result = built(app_dir, tmp_path)

    assert tree_digest(project_root(app_dir, project)) == before
    answer = run_artifact(Path(result["artifact"]), result["start_command"], tmp_path)
    assert answer.status_code == 200
    if kind != "example":  # the example answers in plain text
        assert answer.json()["node"].startswith("v24.")
    assert_split(Path(result["artifact"]))
    names = _names(Path(result["artifact"]))
    assert not any("/typescript/" in n or n.startswith("node_modules/typescript/") for n in names)
    assert not any(n.startswith(("apps/web", "node_modules/is-number")) for n in names)


def project_root(app_dir: Path, project: Project) -> Path:
    return app_dir.parents[len(Path(project.app).parts) - 1] if project.app else app_dir


def _layers(artifact: Path) -> list[Path]:
    """The layer archives ``artifact.json`` names, as the CLI left them beside it."""
    manifest = json.loads(artifact.read_bytes())
    layers = [
        artifact.parent / "layers" / layer["role"] / "layer.tar.gz" for layer in manifest["layers"]
    ]
    for path, named in zip(layers, manifest["layers"], strict=True):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == named["digest"]
    return layers


def _layer_names(artifact: Path) -> dict[str, list[tuple[str, bool]]]:
    """Each layer's (entry name, is a directory), by role."""
    found = {}
    for path in _layers(artifact):
        with tarfile.open(path) as archive:
            found[path.parent.name] = [(m.name, m.isdir()) for m in archive.getmembers()]
    return found


def _names(artifact: Path) -> list[str]:
    return sorted({name for layer in _layer_names(artifact).values() for name, _ in layer})


def assert_split(artifact: Path) -> None:
    """node_modules in the deps layer, the rest in the app layer; only a directory in both."""
    layers = _layer_names(artifact)
    deps, app = layers.get("deps", []), layers["app"]
    assert deps, "every fixture project has dependencies"
    assert all("node_modules" in name.split("/") or is_dir for name, is_dir in deps)
    assert not any("node_modules" in name.split("/") for name, _ in app)
    shared = {name for name, _ in deps} & {name for name, _ in app}
    assert all(is_dir for name, is_dir in deps + app if name in shared)


def test_an_unchanged_project_installs_builds_and_packs_nothing(tmp_path: Path) -> None:
    app_dir = PROJECTS["typescript"].copy_to(tmp_path)
    first = built(app_dir, tmp_path)
    again = built(app_dir, tmp_path)
    assert again["digest"] == first["digest"]
    assert "nothing to install" in again["log"]
    assert "nothing to build" in again["log"]
    assert again["log"].count("reusing layer.tar.gz") == 2  # neither layer is packed again


def test_a_source_change_rebuilds_without_installing(tmp_path: Path) -> None:
    app_dir = PROJECTS["typescript"].copy_to(tmp_path)
    first = built(app_dir, tmp_path)
    greeting = app_dir / "src" / "greeting.ts"
    greeting.write_text(greeting.read_text().replace("compiled by tsc", "changed at the edge"))
    changed = built(app_dir, tmp_path)
    assert "nothing to install" in changed["log"]
    assert "building: npm run build" in changed["log"]
    assert changed["digest"] != first["digest"]
    # Only the app layer changed: the dependencies are not packed again.
    assert "deps layer: nothing changed since the last pack" in changed["log"]
    assert changed["layers"][0]["digest"] == first["layers"][0]["digest"]
    assert changed["layers"][1]["digest"] != first["layers"][1]["digest"]
    answer = run_artifact(Path(changed["artifact"]), changed["start_command"], tmp_path)
    assert answer.json()["message"] == "changed at the edge"


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("example", "npm ci` can only install packages when your package.json and package-lock"),
        ("pnpm", "ERR_PNPM_OUTDATED_LOCKFILE"),
        ("yarn-classic", "Your lockfile needs to be updated"),
        (
            "yarn-berry",
            "The lockfile would have been modified by this install, which is explicitly forbidden",
        ),
    ],
)
def test_a_lockfile_out_of_sync_fails_with_the_package_managers_reason(
    kind: str, reason: str, tmp_path: Path
) -> None:
    app_dir = PROJECTS[kind].copy_to(tmp_path)
    package = json.loads((app_dir / "package.json").read_text())
    package["dependencies"]["left-pad"] = "1.3.0"  # not in the lockfile
    (app_dir / "package.json").write_text(json.dumps(package))
    done = build(app_dir, tmp_path)
    assert done.returncode == 10, done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "build"
    assert "failed with exit code" in error["message"]
    assert any(reason in line for line in error["details"]), error["details"]
    assert len(error["details"]) <= 12
    assert "A complete log of this run" not in "\n".join(error["details"])


def _depend_on_debug(app_dir: Path) -> str:
    """Make express's own ``debug`` a direct dependency (already in the npm cache and the
    staging install); returns its version."""
    lock = json.loads((app_dir / "package-lock.json").read_text())
    version = str(lock["packages"]["node_modules/debug"]["version"])
    package = json.loads((app_dir / "package.json").read_text())
    package["dependencies"]["debug"] = version
    (app_dir / "package.json").write_text(json.dumps(package, indent=2) + "\n")
    return version


def _build_offline(app_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``build`` at debug level, npm kept off the network (what it needs is cached)."""
    return subprocess.run(
        [
            *(AETHER, "--log-level", "debug", "--log-format", "text", "deploy", "--pack-only"),
            *("--format", "json", "--path", str(app_dir)),
        ],
        capture_output=True,
        text=True,
        env={**_env(tmp_path), "npm_config_offline": "true"},
        timeout=600,
        check=False,
    )


def test_a_dependency_change_updates_the_earlier_install_in_place(tmp_path: Path) -> None:
    app_dir = PROJECTS["example"].copy_to(tmp_path)
    built(app_dir, tmp_path)
    express = app_dir / ".aether/staging/node_modules/express"
    before = express.stat().st_ino
    _depend_on_debug(app_dir)
    subprocess.run(
        ["npm", "install", "--package-lock-only", "--offline", "--no-audit", "--no-fund"],
        cwd=app_dir,
        check=True,
        capture_output=True,
    )
    project = tree_digest(app_dir)

    done = _build_offline(app_dir, tmp_path)

    assert done.returncode == 0, done.stderr
    assert "running npm install --include=dev" in done.stderr
    assert "npm ci" not in done.stderr
    assert express.stat().st_ino == before  # not removed and installed again
    assert tree_digest(app_dir) == project
    staged = app_dir / ".aether/staging/package-lock.json"
    assert staged.read_bytes() == (app_dir / "package-lock.json").read_bytes()


def test_a_lockfile_out_of_sync_after_an_install_still_fails_with_npms_reason(
    tmp_path: Path,
) -> None:
    app_dir = PROJECTS["example"].copy_to(tmp_path)
    built(app_dir, tmp_path)
    package = json.loads((app_dir / "package.json").read_text())
    package["dependencies"]["left-pad"] = "1.3.0"  # not in the lockfile
    (app_dir / "package.json").write_text(json.dumps(package))
    lockfile = (app_dir / "package-lock.json").read_bytes()

    done = _build_offline(app_dir, tmp_path)

    assert done.returncode == 10, done.stderr
    assert "running npm install --include=dev" in done.stderr
    assert "; installing afresh" in done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["message"].startswith("`npm ci --include=dev")
    assert any("package.json and package-lock" in line for line in error["details"])
    assert (app_dir / "package-lock.json").read_bytes() == lockfile
    assert (app_dir / ".aether/staging/package-lock.json").read_bytes() == lockfile


def test_a_mach_o_addon_fails_the_build_naming_the_file(tmp_path: Path) -> None:
    app_dir = PROJECTS["native-addon"].copy_to(tmp_path)
    (app_dir / "vendor").mkdir()
    (app_dir / "vendor" / "fast.node").write_bytes(b"\xcf\xfa\xed\xfe" + bytes(60))
    done = build(app_dir, tmp_path)
    assert done.returncode == 10
    message = json.loads(done.stdout)["error"]["message"]
    assert "vendor/fast.node is a macOS (Mach-O) binary, not one for linux/amd64" in message


def test_native_addons_are_listed_in_the_manifest_with_their_abi(tmp_path: Path) -> None:
    result = built(PROJECTS["native-addon"].copy_to(tmp_path), tmp_path)
    manifest = json.loads(Path(result["manifest"]).read_text())
    addons = {a["path"]: a for a in manifest["native_addons"]}
    assert addons["build/Release/hello.node"]["abi"] == "137"  # Node 24's, from its headers
    gnu = "node_modules/@node-rs/crc32-linux-x64-gnu/crc32.linux-x64-gnu.node"
    assert addons[gnu]["abi"] == "node-api"
    assert manifest["target"] == {"platform": "linux/amd64", "libc": "glibc", "node": 24}
    assert not any("musl" in path for path in addons)


def test_a_start_command_whose_file_the_build_does_not_write_fails_before_upload(
    tmp_path: Path,
) -> None:
    app_dir = PROJECTS["typescript"].copy_to(tmp_path)
    package = json.loads((app_dir / "package.json").read_text())
    package["scripts"]["start"] = "node dist/main.js"
    (app_dir / "package.json").write_text(json.dumps(package))
    done = build(app_dir, tmp_path)
    assert done.returncode == 10
    message = json.loads(done.stdout)["error"]["message"]
    assert "the artifact has no dist/main.js: does the build write it?" in message


def test_a_start_script_that_runs_a_dev_tool_falls_back_to_start_prod(tmp_path: Path) -> None:
    # As a NestJS project: "start" is "nest start" (the Nest CLI is a devDependency).
    app_dir = PROJECTS["typescript"].copy_to(tmp_path)
    package = json.loads((app_dir / "package.json").read_text())
    package["scripts"]["start"] = "tsc --watch"
    (app_dir / "package.json").write_text(json.dumps(package))
    done = build(app_dir, tmp_path)
    assert done.returncode == 10
    assert (
        "runs `tsc`, which only a devDependency provides"
        in json.loads(done.stdout)["error"]["message"]
    )

    package["scripts"]["start:prod"] = "node dist/index.js"
    (app_dir / "package.json").write_text(json.dumps(package))
    result = built(app_dir, tmp_path)
    assert result["start_command"] == "npm run start:prod"
    answer = run_artifact(Path(result["artifact"]), result["start_command"], tmp_path)
    assert answer.json()["kind"] == "ts-express"


def test_another_platform_gets_its_own_per_platform_packages(tmp_path: Path) -> None:
    app_dir = PROJECTS["native-addon"].copy_to(tmp_path)
    # Only the prebuilt Node-API package: a C++ addon compiled here cannot run on arm64.
    (app_dir / "binding.gyp").unlink()
    package = json.loads((app_dir / "package.json").read_text())
    del package["gypfile"]
    (app_dir / "package.json").write_text(json.dumps(package))

    result = built(app_dir, tmp_path, "--platform", "linux/arm64")
    assert "installing the production dependencies for linux/arm64" in result["log"]
    names = _names(Path(result["artifact"]))
    assert "node_modules/@node-rs/crc32-linux-arm64-gnu/crc32.linux-arm64-gnu.node" in names
    assert not any("crc32-linux-x64" in name for name in names)
    manifest = json.loads(Path(result["manifest"]).read_text())
    assert manifest["target"]["platform"] == "linux/arm64"
    assert [a["machine"] for a in manifest["native_addons"]] == ["AArch64"]


def test_an_addon_compiled_for_this_machine_cannot_ship_to_another_platform(
    tmp_path: Path,
) -> None:
    done = build(PROJECTS["native-addon"].copy_to(tmp_path), tmp_path, "--platform", "linux/arm64")
    assert done.returncode == 10
    message = json.loads(done.stdout)["error"]["message"]
    assert "build/Release/hello.node is built for x86-64, not linux/arm64" in message


@pytest.mark.parametrize("kind", ["example", "pnpm"])
def test_the_sbom_lists_exactly_the_packed_packages_deterministically(
    kind: str, tmp_path: Path
) -> None:
    app_dir = PROJECTS[kind].copy_to(tmp_path)
    result = built(app_dir, tmp_path)
    bom = json.loads(Path(result["sbom"]).read_text())
    names = {c["name"] for c in bom["components"]}
    package_root = re.compile(r"(?:^|/)node_modules/((?:@[^/]+/)?[^/@.][^/]*)/package\.json$")
    packed = {
        match.group(1)
        for name in _names(Path(result["artifact"]))
        if (match := package_root.search(name))
    }
    assert names == packed  # what was packed, nothing else
    assert "express" in names and "is-number" not in names
    express = next(c for c in bom["components"] if c["name"] == "express")
    assert express["purl"] == f"pkg:npm/express@{express['version']}"
    assert express["licenses"] == [{"license": {"id": "MIT"}}]
    assert bom["metadata"]["properties"] == [
        {"name": "aether:artifact-sha256", "value": result["digest"]},
        {"name": "aether:platform", "value": "linux/amd64"},
    ]
    assert "timestamp" not in bom["metadata"]
    if kind == "example":  # npm's lockfile records the registry's integrity hashes
        assert express["hashes"][0]["alg"] == "SHA-512"
    first = Path(result["sbom"]).read_bytes()
    built(app_dir, tmp_path)
    assert Path(result["sbom"]).read_bytes() == first
