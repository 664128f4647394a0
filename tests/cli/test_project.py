"""Detecting a Node.js project, and installing its production dependencies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from aether_cli.pack import pack_tree
from aether_cli.project import (
    INSTALL_STAMP_NAME,
    InstallError,
    NodeProject,
    ProjectError,
    ToolMissingError,
    detect_project,
    find_npm,
    install_production_dependencies,
    majors_allowed,
)

requires_npm = pytest.mark.skipif(
    shutil.which("npm") is None,
    reason="npm is not installed (CI's setup installs Node.js and warms npm's cache)",
)


def _project(tmp_path: Path, package: object, files: dict[str, str] | None = None) -> Path:
    root = tmp_path / "proj"
    root.mkdir(exist_ok=True)
    text = package if isinstance(package, str) else json.dumps(package)
    (root / "package.json").write_text(text)
    for name, content in (files or {}).items():
        (root / name).write_text(content)
    return root


def _start(**extra: object) -> dict[str, object]:
    return {"name": "app", "scripts": {"start": "node index.js"}, **extra}


# -- package.json --------------------------------------------------------------


def test_a_directory_without_package_json_is_not_a_project(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match=r"no package\.json in .*npm init"):
        detect_project(tmp_path)


def test_a_broken_package_json_says_where(tmp_path: Path) -> None:
    root = _project(tmp_path, '{\n  "name": "app",\n  "scripts": {,}\n}\n')
    with pytest.raises(ProjectError, match=r"not valid JSON \(line 3"):
        detect_project(root)


@pytest.mark.parametrize(
    "package",
    [
        "[1, 2]",
        {"name": 42, "scripts": {"start": "x"}},
        {"name": "app", "scripts": "node x"},
        {"name": "app", "scripts": {"start": "x"}, "engines": "node 20"},
        {"name": "app", "scripts": {"start": "x"}, "engines": {"node": 20}},
    ],
)
def test_malformed_fields_are_project_errors(tmp_path: Path, package: object) -> None:
    with pytest.raises(ProjectError):
        detect_project(_project(tmp_path, package))


def test_a_typical_project_is_detected(tmp_path: Path) -> None:
    root = _project(tmp_path, _start(engines={"node": "20.x"}), {"package-lock.json": "{}"})
    project = detect_project(root)
    assert project == NodeProject(
        root=root.resolve(),
        name="app",
        node_major=20,
        start_command="npm start",
        lockfile=root.resolve() / "package-lock.json",
        node_major_source="engines.node",
    )


def test_shrinkwrap_wins_over_package_lock(tmp_path: Path) -> None:
    root = _project(tmp_path, _start(), {"package-lock.json": "{}", "npm-shrinkwrap.json": "{}"})
    assert detect_project(root).lockfile == root.resolve() / "npm-shrinkwrap.json"


def test_no_lockfile_is_allowed(tmp_path: Path) -> None:
    assert detect_project(_project(tmp_path, _start())).lockfile is None


def test_the_example_app_is_a_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "hello-express"
    monkeypatch.setenv("PATH", str(_fake_node(tmp_path, "v22.12.0")))
    project = detect_project(example)
    assert (project.name, project.start_command, project.node_major) == (
        "hello-express",
        "npm start",
        22,
    )
    assert project.lockfile == example / "package-lock.json"


# -- start command -------------------------------------------------------------


def test_start_command_falls_back_to_server_js_then_main(tmp_path: Path) -> None:
    root = _project(tmp_path, {"name": "app", "main": "lib/index.js"}, {"server.js": ""})
    assert detect_project(root).start_command == "node server.js"
    (root / "server.js").unlink()
    (root / "lib").mkdir()
    (root / "lib" / "index.js").write_text("")
    assert detect_project(root).start_command == "node lib/index.js"


def test_no_way_to_start_is_an_error_with_a_hint(tmp_path: Path) -> None:
    root = _project(tmp_path, {"name": "app", "main": "missing.js"})
    with pytest.raises(ProjectError, match=r'"start".*--start-command'):
        detect_project(root)
    assert detect_project(root, start_command="node x.js").start_command == "node x.js"


# -- Node major ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("engines", "major"),
    [
        (">=18", 22),
        (">= 18", 22),
        ("20.x", 20),
        ("20", 20),
        ("v20.11.1", 20),
        ("^22.1.0", 22),
        ("~18.17", 18),
        ("18 || 20", 20),
        ("^18 || ^20", 20),
        (">=18 <21", 20),
        (">=18.0.0 <=20.x", 20),
        ("18 - 20", 20),
        (">16 <19", 18),
        ("*", 22),
        ("x", 22),
        ("", 20),
        (">=20.0.0-rc.1", 22),
    ],
)
def test_engines_node_picks_the_highest_supported_major_without_a_local_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engines: str, major: int
) -> None:
    monkeypatch.setenv("PATH", str(_fake_node(tmp_path, None)))
    assert detect_project(_project(tmp_path, _start(engines={"node": engines}))).node_major == major


@pytest.mark.parametrize(("engines", "major"), [(">=18", 20), ("18 || 20 || 22", 20), ("^22", 22)])
def test_engines_node_prefers_the_local_node_when_the_range_allows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engines: str, major: int
) -> None:
    monkeypatch.setenv("PATH", str(_fake_node(tmp_path, "v20.11.1")))
    project = detect_project(_project(tmp_path, _start(engines={"node": engines})))
    assert project.node_major == major


def _fake_node(tmp_path: Path, version: str | None) -> Path:
    """A PATH directory whose ``node`` prints ``version`` (or has no node at all)."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    if version is not None:
        node = bin_dir / "node"
        node.write_text(f"#!/bin/sh\necho {version}\n")
        node.chmod(0o755)
    return bin_dir


def test_no_engines_and_no_nvmrc_means_node_20(tmp_path: Path) -> None:
    project = detect_project(_project(tmp_path, _start()))
    assert (project.node_major, project.node_major_source) == (20, "default")


@pytest.mark.parametrize("engines", [">=23", "16.x", "<18", "^0.12"])
def test_engines_allowing_no_supported_major_is_an_error(tmp_path: Path, engines: str) -> None:
    with pytest.raises(ProjectError, match="allows no Node major that Aether runs"):
        detect_project(_project(tmp_path, _start(engines={"node": engines})))


@pytest.mark.parametrize("engines", ["banana", ">=20 <", "node 20", "latest"])
def test_unreadable_engines_is_an_error(tmp_path: Path, engines: str) -> None:
    with pytest.raises(ProjectError, match="not a version range Aether understands"):
        detect_project(_project(tmp_path, _start(engines={"node": engines})))


@pytest.mark.parametrize(
    ("nvmrc", "major"),
    [
        ("v20\n", 20),
        ("20", 20),
        ("22.11.0\n", 22),
        ("v18.20.4", 18),
        ("lts/iron\n", 20),
        ("lts/hydrogen", 18),
        ("lts/jod", 22),
        ("lts/*", 22),
        ("20 # pinned for native addons\n", 20),
    ],
)
def test_nvmrc_gives_the_major(tmp_path: Path, nvmrc: str, major: int) -> None:
    project = detect_project(_project(tmp_path, _start(), {".nvmrc": nvmrc}))
    assert (project.node_major, project.node_major_source) == (major, ".nvmrc")


@pytest.mark.parametrize("nvmrc", ["node", "stable", "lts/gallium", "16", "v23.1.0", "iojs"])
def test_unsupported_nvmrc_is_an_error(tmp_path: Path, nvmrc: str) -> None:
    with pytest.raises(ProjectError, match=r"\.nvmrc"):
        detect_project(_project(tmp_path, _start(), {".nvmrc": nvmrc}))


def test_nvmrc_narrows_engines_and_must_agree_with_it(tmp_path: Path) -> None:
    root = _project(tmp_path, _start(engines={"node": ">=18"}), {".nvmrc": "v20.11.0\n"})
    assert detect_project(root).node_major == 20
    (root / ".nvmrc").write_text("18\n")
    (root / "package.json").write_text(json.dumps(_start(engines={"node": ">=20"})))
    with pytest.raises(ProjectError, match="make them agree"):
        detect_project(root)


def test_majors_allowed_handles_caret_on_zero_versions() -> None:
    assert majors_allowed("^0.2.3", candidates=(0, 1)) == {0}
    assert majors_allowed("~1", candidates=(0, 1, 2)) == {1}
    assert majors_allowed("<20.0.0", candidates=(19, 20)) == {19}
    assert majors_allowed(">20", candidates=(20, 21)) == {21}
    assert majors_allowed(">20.1", candidates=(20, 21)) == {20, 21}


# -- installing ----------------------------------------------------------------


def test_npm_missing_is_a_tool_error(tmp_path: Path, path_without_npm: Path) -> None:
    with pytest.raises(ToolMissingError, match="npm was not found on PATH"):
        find_npm()
    root = _project(tmp_path, _start())
    with pytest.raises(ToolMissingError):
        install_production_dependencies(detect_project(root), log=lambda _: None)


@pytest.fixture
def fake_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `npm` on PATH that records its arguments and fills node_modules; its calls file."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    calls = tmp_path / "npm-calls"
    script = bin_dir / "npm"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{calls}"\n'
        'if [ -n "$FAKE_NPM_FAIL" ]; then echo "npm error code EUSAGE"; exit 1; fi\n'
        "mkdir -p node_modules/dep && echo 'module.exports = 1' > node_modules/dep/index.js\n"
        "echo 'added 1 package'\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.delenv("FAKE_NPM_FAIL", raising=False)
    return calls


def _npm_calls(calls: Path) -> list[str]:
    return calls.read_text().splitlines() if calls.exists() else []


def test_install_uses_npm_ci_with_a_lockfile_and_skips_when_nothing_changed(
    tmp_path: Path, fake_npm: Path
) -> None:
    root = _project(tmp_path, _start(), {"package-lock.json": '{"lockfileVersion": 3}'})
    project = detect_project(root)
    messages: list[str] = []

    assert install_production_dependencies(project, log=messages.append) is True
    assert _npm_calls(fake_npm) == ["ci --omit=dev --no-audit --no-fund"]
    assert "npm: added 1 package" in messages  # npm's output reaches the log, not stdout

    messages.clear()
    assert install_production_dependencies(project, log=messages.append) is False
    assert messages == ["dependencies unchanged since the last install: skipping npm"]
    assert len(_npm_calls(fake_npm)) == 1


@pytest.mark.parametrize(
    "change",
    ["lockfile", "package.json", "node major", "package removed", "package added", "stamp deleted"],
)
def test_install_runs_again_when_an_input_changed(
    tmp_path: Path, fake_npm: Path, change: str
) -> None:
    root = _project(tmp_path, _start(), {"package-lock.json": '{"lockfileVersion": 3}'})
    project = detect_project(root)
    assert install_production_dependencies(project, log=lambda _: None) is True

    if change == "lockfile":
        (root / "package-lock.json").write_text('{"lockfileVersion": 3, "x": 1}')
    elif change == "package.json":
        (root / "package.json").write_text(json.dumps(_start(description="new")))
    elif change == "node major":
        (root / ".nvmrc").write_text("18\n")
    elif change == "package removed":
        shutil.rmtree(root / "node_modules" / "dep")
    elif change == "package added":
        (root / "node_modules" / "stray").mkdir()
    else:
        (root / "node_modules" / INSTALL_STAMP_NAME).unlink()

    assert install_production_dependencies(detect_project(root), log=lambda _: None) is True
    assert len(_npm_calls(fake_npm)) == 2


def test_install_without_a_lockfile_does_not_write_one(tmp_path: Path, fake_npm: Path) -> None:
    root = _project(tmp_path, _start())
    messages: list[str] = []
    assert install_production_dependencies(detect_project(root), log=messages.append) is True
    assert _npm_calls(fake_npm) == ["install --omit=dev --no-package-lock --no-audit --no-fund"]
    assert any("no package-lock.json" in m for m in messages)


def test_a_failing_npm_is_an_install_error_with_its_last_words(
    tmp_path: Path, fake_npm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NPM_FAIL", "1")
    root = _project(tmp_path, _start(), {"package-lock.json": "{}"})
    with pytest.raises(InstallError, match=r"failed with exit code 1:\nnpm error code EUSAGE"):
        install_production_dependencies(detect_project(root), log=lambda _: None)
    assert not (root / "node_modules" / INSTALL_STAMP_NAME).exists()
    assert isinstance(InstallError("x"), ProjectError)  # the CLI's exit 10 covers it


@requires_npm
def test_real_npm_ci_installs_the_example_then_skips(hello_express_copy: Path) -> None:
    project = detect_project(hello_express_copy)
    assert install_production_dependencies(project, log=lambda _: None) is True
    assert (hello_express_copy / "node_modules" / "express" / "package.json").is_file()
    assert install_production_dependencies(project, log=lambda _: None) is False

    # The stamp never reaches the archive (it holds mtimes).
    result = pack_tree(hello_express_copy, hello_express_copy / ".aether" / "build")
    manifest = result.manifest.read_text()
    assert INSTALL_STAMP_NAME not in manifest
    assert '"path": "node_modules/express/package.json"' in manifest


@requires_npm
def test_real_npm_ci_refuses_a_lockfile_out_of_sync(hello_express_copy: Path) -> None:
    package = json.loads((hello_express_copy / "package.json").read_text())
    package["dependencies"]["left-pad"] = "1.3.0"  # not in the lockfile: npm ci refuses
    (hello_express_copy / "package.json").write_text(json.dumps(package))
    with pytest.raises(InstallError, match=r"npm ci --omit=dev .*failed with exit code"):
        install_production_dependencies(detect_project(hello_express_copy), log=lambda _: None)
