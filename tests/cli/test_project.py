"""Detecting a Node.js project: package.json, workspace, package manager, commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aether_cli.project import ProjectError, detect_project, find_workspace_root, matches_workspace
from aether_cli.project_file import ProjectFileError, read_project_file


def _project(tmp_path: Path, package: object, files: dict[str, str] | None = None) -> Path:
    root = tmp_path / "proj"
    root.mkdir(exist_ok=True)
    text = package if isinstance(package, str) else json.dumps(package)
    (root / "package.json").write_text(text)
    for name, content in (files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
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
        {"name": "app", "scripts": {"start": "x"}, "packageManager": "pnpm"},
        {"name": "app", "scripts": {"start": "x"}, "packageManager": "bun@1.2.0"},
    ],
)
def test_malformed_fields_are_project_errors(tmp_path: Path, package: object) -> None:
    with pytest.raises(ProjectError):
        detect_project(_project(tmp_path, package))


def test_a_typical_project_is_detected(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        _start(engines={"node": "22.x"}, scripts={"start": "node dist/index.js", "build": "tsc"}),
        {"package-lock.json": "{}"},
    ).resolve()
    project = detect_project(root)
    assert (project.root, project.workspace_root, project.package_path) == (root, root, "")
    assert (project.name, project.node_major, project.node_major_source) == (
        "app",
        22,
        "engines.node",
    )
    assert (project.manager.name, project.lockfile) == ("npm", root / "package-lock.json")
    assert project.from_artifact_root(project.start_command) == "npm start"
    assert (project.build_command, project.build_source) == ("npm run build", "scripts.build")


def test_the_example_app_is_a_project() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "hello-express"
    project = detect_project(example)
    assert (project.name, project.start_command, project.build_command) == (
        "hello-express",
        "npm start",
        None,
    )
    assert project.lockfile == example / "package-lock.json"


# -- package manager -----------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "name", "lockfile"),
    [
        ({"package-lock.json": "{}"}, "npm", "package-lock.json"),
        ({"package-lock.json": "{}", "npm-shrinkwrap.json": "{}"}, "npm", "npm-shrinkwrap.json"),
        ({"pnpm-lock.yaml": "lockfileVersion: '9.0'\n"}, "pnpm", "pnpm-lock.yaml"),
        ({"yarn.lock": "# yarn lockfile v1\n"}, "yarn", "yarn.lock"),
        ({}, "npm", None),
    ],
)
def test_the_lockfile_picks_the_package_manager(
    tmp_path: Path, files: dict[str, str], name: str, lockfile: str | None
) -> None:
    project = detect_project(_project(tmp_path, _start(), files))
    assert project.manager.name == name
    assert project.lockfile == (project.root / lockfile if lockfile else None)


def test_yarn_berry_is_told_from_the_lockfile_or_the_pin(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        _start(),
        {"yarn.lock": "__metadata:\n  version: 8\n", ".yarnrc.yml": "nodeLinker: node-modules\n"},
    )
    assert detect_project(root).manager.berry
    (root / "yarn.lock").write_text("# yarn lockfile v1\n")
    assert not detect_project(root).manager.berry
    (root / "package.json").write_text(json.dumps(_start(packageManager="yarn@4.18.1")))
    manager = detect_project(root).manager
    assert (manager.berry, manager.pinned, manager.label) == (True, "4.18.1", "yarn (Berry) 4.18.1")


def test_yarn_plug_n_play_is_refused_with_what_to_change(tmp_path: Path) -> None:
    root = _project(tmp_path, _start(packageManager="yarn@4.18.1"), {"yarn.lock": "__metadata:\n"})
    with pytest.raises(ProjectError, match=r"Plug'n'Play.*nodeLinker: node-modules"):
        detect_project(root)


def test_two_lockfiles_without_a_pin_are_an_error(tmp_path: Path) -> None:
    root = _project(tmp_path, _start(), {"package-lock.json": "{}", "pnpm-lock.yaml": ""})
    with pytest.raises(ProjectError, match=r"package-lock\.json and pnpm-lock\.yaml"):
        detect_project(root)
    (root / "package.json").write_text(json.dumps(_start(packageManager="pnpm@10.34.9")))
    assert detect_project(root).manager.name == "pnpm"


def test_a_pin_that_contradicts_the_lockfile_is_an_error(tmp_path: Path) -> None:
    root = _project(tmp_path, _start(packageManager="pnpm@10.34.9"), {"yarn.lock": ""})
    with pytest.raises(ProjectError, match=r"pins.*pnpm@10\.34\.9.*yarn\.lock: make them agree"):
        detect_project(root)


def test_pnpm_or_yarn_without_a_lockfile_is_an_error(tmp_path: Path) -> None:
    root = _project(tmp_path, _start(packageManager="pnpm@10.34.9+sha512.abc"))
    with pytest.raises(ProjectError, match=r"no pnpm-lock\.yaml: run `pnpm install` and commit"):
        detect_project(root)


# -- start and build commands --------------------------------------------------


def test_start_command_falls_back_to_server_js_then_main(tmp_path: Path) -> None:
    root = _project(tmp_path, {"name": "app", "main": "lib/index.js"}, {"server.js": ""})
    assert detect_project(root).start_command == "node server.js"
    (root / "server.js").unlink()
    # main may name what the build writes: it is checked after the build.
    assert detect_project(root).start_command == "node lib/index.js"


def test_no_way_to_start_is_an_error_with_a_hint(tmp_path: Path) -> None:
    root = _project(tmp_path, {"name": "app"})
    with pytest.raises(ProjectError, match=r'"start".*--start-command'):
        detect_project(root)
    assert detect_project(root, start_command="node x.js").start_command == "node x.js"


def test_the_build_command_comes_from_the_flag_the_project_file_or_the_script(
    tmp_path: Path,
) -> None:
    root = _project(
        tmp_path, _start(scripts={"start": "node x.js", "build": "tsc"}), {"pnpm-lock.yaml": ""}
    )
    assert detect_project(root).build_command == "pnpm run build"
    (root / "aether.toml").write_text('[build]\ncommand = "make dist"\n')
    project = detect_project(root)
    assert (project.build_command, project.build_source) == (
        "make dist",
        "aether.toml [build] command",
    )
    project = detect_project(root, build_command="esbuild x")
    assert (project.build_command, project.build_source) == ("esbuild x", "--build-command")
    project = detect_project(root, build=False)
    assert (project.build_command, project.builds) == (None, False)


# -- workspaces ----------------------------------------------------------------


def _monorepo(tmp_path: Path, *, pnpm: bool = False) -> Path:
    root = tmp_path / "mono"
    (root / "apps" / "api").mkdir(parents=True)
    (root / "tools" / "script").mkdir(parents=True)
    if pnpm:
        (root / "package.json").write_text('{"private": true}')
        (root / "pnpm-workspace.yaml").write_text("packages:\n  - 'apps/*'\n  - \"!apps/legacy\"\n")
        (root / "pnpm-lock.yaml").write_text("lockfileVersion: '9.0'\n")
    else:
        (root / "package.json").write_text('{"private": true, "workspaces": ["apps/*"]}')
        (root / "package-lock.json").write_text("{}")
    for package in ("apps/api", "tools/script"):
        (root / package / "package.json").write_text(json.dumps(_start(name="api")))
    return root


@pytest.mark.parametrize("pnpm", [False, True])
def test_a_workspace_package_uses_the_root_lockfile_and_starts_in_its_directory(
    tmp_path: Path, pnpm: bool
) -> None:
    root = _monorepo(tmp_path, pnpm=pnpm)
    project = detect_project(root / "apps" / "api")
    assert project.workspace_root == root.resolve()
    assert project.package_path == "apps/api"
    assert project.manager.name == ("pnpm" if pnpm else "npm")
    assert project.from_artifact_root(project.start_command) == "cd apps/api && npm start"


def test_a_package_inside_a_workspace_that_does_not_list_it_is_an_error(tmp_path: Path) -> None:
    root = _monorepo(tmp_path)
    with pytest.raises(ProjectError, match=r"not one of its packages: add 'tools/script'"):
        detect_project(root / "tools" / "script")


@pytest.mark.parametrize(
    ("path", "patterns", "matched"),
    [
        ("apps/api", ["apps/*"], True),
        ("apps/api/v2", ["apps/*"], False),
        ("apps/api/v2", ["apps/**"], True),
        ("packages/x", ["./packages/*/"], True),
        ("apps/legacy", ["apps/*", "!apps/legacy"], False),
        ("svc/a/b", ["**/b"], True),
    ],
)
def test_workspace_globs(path: str, patterns: list[str], matched: bool) -> None:
    assert matches_workspace(path, patterns) is matched


def test_a_project_outside_any_workspace_is_its_own_root(tmp_path: Path) -> None:
    root = _project(tmp_path, _start())
    assert find_workspace_root(root) == root


# -- aether.toml ---------------------------------------------------------------


def test_the_project_file_is_read_and_checked(tmp_path: Path) -> None:
    (tmp_path / "aether.toml").write_text(
        'app = "shop-api"\n[build]\ncommand = "npm run build:prod"\n'
        '[deploy]\nstart_command = "node dist/main.js"\nreplicas = 2\n'
        'release_command = "npm run migrate"\n[env]\nLOG_LEVEL = "info"\n'
    )
    settings = read_project_file(tmp_path)
    assert (settings.app, settings.build_command, settings.start_command) == (
        "shop-api",
        "npm run build:prod",
        "node dist/main.js",
    )
    assert (settings.replicas, settings.env) == (2, {"LOG_LEVEL": "info"})
    assert settings.release_command == "npm run migrate"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('appp = "x"\n', r"aether\.toml:1: appp is not a setting Aether knows"),
        ('[build]\ncmd = "x"\n', r"aether\.toml:2: build\.cmd is not a setting of \[build\]"),
        ('[deploy]\nreplicas = "2"\n', r":2: deploy\.replicas must be an integer"),
        ("[deploy]\nreplicas = 99\n", r"deploy\.replicas must be from 0 to 20"),
        ('app = "9lives"\n', r"app must be lowercase letters"),
        ('[env]\nPORT = "1"\n', r"env\.PORT is not a variable name Aether can set"),
        ("[env]\nWORKERS = 3\n", r"env\.WORKERS must be a string"),
        ('[build]\ncommand = " "\n', r"build\.command must not be empty"),
        ('[deploy]\nrelease_command = ""\n', r":2: deploy\.release_command must not be empty"),
        ("[deploy]\nrelease_command = 1\n", r"deploy\.release_command must be a string"),
        (
            f'[deploy]\nrelease_command = "{"x" * 4097}"\n',
            r"deploy\.release_command must be at most 4096 characters",
        ),
        ("build = 1\n", r"build must be a table"),
        ("app = \n", r"aether\.toml: "),
    ],
)
def test_a_malformed_project_file_names_the_key_and_its_line(
    tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "aether.toml").write_text(text)
    with pytest.raises(ProjectFileError, match=message):
        read_project_file(tmp_path)
