"""The CycloneDX SBOM: from npm where it can, from the lockfile otherwise; deterministic."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from aether_cli.project import NodeProject, ProjectError, detect_project
from aether_cli.sbom import INPUTS_PROPERTY, sbom_from_lockfile, write_sbom

requires_npm = pytest.mark.skipif(
    shutil.which("npm") is None,
    reason="npm is not installed (CI's setup installs Node.js and warms npm's cache)",
)

_INTEGRITY = "sha512-" + base64.b64encode(hashlib.sha512(b"express").digest()).decode()

LOCKFILE = {
    "name": "shop",
    "version": "2.0.0",
    "lockfileVersion": 3,
    "requires": True,
    "packages": {
        "": {
            "name": "shop",
            "version": "2.0.0",
            "dependencies": {"express": "^5.0.0", "@aws/client": "^1.0.0"},
            "devDependencies": {"jest": "^29.0.0"},
            "optionalDependencies": {"fsevents": "^2.0.0"},
        },
        "node_modules/express": {
            "version": "5.1.0",
            "resolved": "https://registry.npmjs.org/express/-/express-5.1.0.tgz",
            "integrity": _INTEGRITY,
            "license": "MIT",
            "dependencies": {"debug": "^4.0.0"},
        },
        "node_modules/debug": {"version": "4.4.0", "license": "MIT"},
        "node_modules/express/node_modules/debug": {
            "version": "2.6.9",
            "license": "MIT OR Apache-2.0",
        },
        "node_modules/@aws/client": {
            "version": "1.2.3",
            "license": "SEE LICENSE IN LICENSE.txt",
            "dependencies": {"debug": "^4.0.0"},
        },
        "node_modules/jest": {"version": "29.7.0", "dev": True},
        "node_modules/fsevents": {"version": "2.3.3", "optional": True, "os": ["darwin"]},
    },
}


def _lock_project(tmp_path: Path, lock: object = LOCKFILE) -> NodeProject:
    root = tmp_path / "shop"
    root.mkdir()
    (root / "package.json").write_text(json.dumps({"name": "shop", "version": "2.0.0"}))
    (root / "package-lock.json").write_text(json.dumps(lock))
    return NodeProject(
        root=root,
        name="shop",
        node_major=20,
        start_command="npm start",
        lockfile=root / "package-lock.json",
    )


def test_lockfile_sbom_lists_production_packages_with_purls_hashes_and_licenses(
    tmp_path: Path,
) -> None:
    project = _lock_project(tmp_path)
    bom = sbom_from_lockfile(project, project.lockfile)

    assert (bom["bomFormat"], bom["specVersion"]) == ("CycloneDX", "1.5")
    assert bom["metadata"]["component"]["purl"] == "pkg:npm/shop@2.0.0"
    by_ref = {c["bom-ref"]: c for c in bom["components"]}
    # jest is dev, fsevents is optional and not installed here.
    assert sorted(by_ref) == ["@aws/client@1.2.3", "debug@2.6.9", "debug@4.4.0", "express@5.1.0"]
    express = by_ref["express@5.1.0"]
    assert express["purl"] == "pkg:npm/express@5.1.0"
    assert express["hashes"] == [
        {"alg": "SHA-512", "content": hashlib.sha512(b"express").hexdigest()}
    ]
    assert express["licenses"] == [{"license": {"id": "MIT"}}]
    assert by_ref["@aws/client@1.2.3"]["purl"] == "pkg:npm/%40aws/client@1.2.3"
    assert by_ref["@aws/client@1.2.3"]["licenses"] == [
        {"license": {"name": "SEE LICENSE IN LICENSE.txt"}}
    ]
    assert by_ref["debug@2.6.9"]["licenses"] == [{"expression": "MIT OR Apache-2.0"}]

    depends = {d["ref"]: d["dependsOn"] for d in bom["dependencies"]}
    assert depends["shop@2.0.0"] == ["@aws/client@1.2.3", "express@5.1.0"]
    assert depends["express@5.1.0"] == ["debug@2.6.9"]  # the nested copy wins, as in Node
    assert depends["@aws/client@1.2.3"] == ["debug@4.4.0"]


def test_installed_optional_packages_are_listed(tmp_path: Path) -> None:
    project = _lock_project(tmp_path)
    (project.root / "node_modules" / "fsevents").mkdir(parents=True)
    (project.root / "node_modules" / "fsevents" / "package.json").write_text("{}")
    bom = sbom_from_lockfile(project, project.lockfile)
    assert "fsevents@2.3.3" in {c["bom-ref"] for c in bom["components"]}


def test_a_v1_lockfile_is_a_clear_error(tmp_path: Path) -> None:
    project = _lock_project(tmp_path, {"lockfileVersion": 1, "dependencies": {}})
    with pytest.raises(ProjectError, match="lockfileVersion 1"):
        sbom_from_lockfile(project, project.lockfile)


def test_without_npm_the_sbom_comes_from_the_lockfile_and_is_deterministic(
    tmp_path: Path, path_without_npm: Path
) -> None:
    project = _lock_project(tmp_path)
    first = tmp_path / "one.json"
    second = tmp_path / "two.json"
    assert write_sbom(project, first, log=lambda _: None) == first
    assert write_sbom(project, second, log=lambda _: None) == second
    assert first.read_bytes() == second.read_bytes()

    bom = json.loads(first.read_text())
    assert "timestamp" not in bom["metadata"]
    assert bom["serialNumber"].startswith("urn:uuid:")
    properties = {p["name"]: p["value"] for p in bom["metadata"]["properties"]}
    assert properties["aether:source"] == "package-lock.json"


def test_unchanged_inputs_keep_the_previous_sbom_and_a_new_lockfile_replaces_it(
    tmp_path: Path, path_without_npm: Path
) -> None:
    project = _lock_project(tmp_path)
    path = tmp_path / "sbom.json"
    write_sbom(project, path, log=lambda _: None)
    key = json.loads(path.read_text())["metadata"]["properties"]

    messages: list[str] = []
    write_sbom(project, path, log=messages.append)
    assert messages == ["SBOM inputs unchanged: keeping the previous sbom.json"]

    lock = json.loads(json.dumps(LOCKFILE))
    lock["packages"]["node_modules/debug"]["version"] = "4.4.1"
    (project.root / "package-lock.json").write_text(json.dumps(lock))
    messages.clear()
    write_sbom(project, path, log=messages.append)
    assert messages == []
    bom = json.loads(path.read_text())
    assert "debug@4.4.1" in {c["bom-ref"] for c in bom["components"]}
    assert bom["metadata"]["properties"] != key


def test_without_a_lockfile_npms_hidden_lockfile_is_used(
    tmp_path: Path, path_without_npm: Path
) -> None:
    project = _lock_project(tmp_path)
    hidden = project.root / "node_modules" / ".package-lock.json"
    hidden.parent.mkdir()
    project.lockfile.rename(hidden)
    project = NodeProject(**{**project.__dict__, "lockfile": None})
    path = write_sbom(project, tmp_path / "sbom.json", log=lambda _: None)
    assert path is not None
    properties = {
        p["name"]: p["value"] for p in json.loads(path.read_text())["metadata"]["properties"]
    }
    assert properties["aether:source"] == "node_modules/.package-lock.json"


def test_nothing_to_build_from_is_a_warning_not_an_error(
    tmp_path: Path, path_without_npm: Path
) -> None:
    project = _lock_project(tmp_path)
    project.lockfile.unlink()
    project = NodeProject(**{**project.__dict__, "lockfile": None})
    messages: list[str] = []
    assert write_sbom(project, tmp_path / "sbom.json", log=messages.append) is None
    assert messages and messages[0].startswith("warning: no SBOM")


@requires_npm
def test_npm_sbom_describes_the_example_offline_and_deterministically(
    hello_express_copy: Path, tmp_path: Path
) -> None:
    project = detect_project(hello_express_copy)
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    write_sbom(project, first, log=lambda _: None)
    write_sbom(project, second, log=lambda _: None)
    assert first.read_bytes() == second.read_bytes()

    bom = json.loads(first.read_text())
    assert (bom["bomFormat"], bom["specVersion"]) == ("CycloneDX", "1.5")
    properties = {p["name"]: p["value"] for p in bom["metadata"]["properties"]}
    assert properties["aether:source"] == "npm sbom"
    assert properties[INPUTS_PROPERTY]
    assert bom["metadata"]["component"]["name"] == "hello-express"
    assert "timestamp" not in bom["metadata"]
    assert any(c["purl"].startswith("pkg:npm/express@5.") for c in bom["components"])
