"""The production closure: what Node would load from an app's production dependencies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aether_cli.artifact_tree import artifact_entries
from aether_cli.closure import ClosureError, production_closure
from aether_cli.ignore import IgnoreRules


def _package(
    root: Path, directory: str, manifest: dict[str, object], files: tuple[str, ...] = ()
) -> None:
    path = root / directory if directory else root
    path.mkdir(parents=True, exist_ok=True)
    (path / "package.json").write_text(json.dumps(manifest))
    for name in files:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(f"// {name}\n")


def _hoisted(tmp_path: Path) -> Path:
    """An npm-style tree: a prod dep with a nested older copy, a dev dep, platform builds."""
    root = tmp_path / "staging"
    _package(
        root,
        "",
        {
            "name": "app",
            "version": "1.0.0",
            "dependencies": {"express": "5", "tool-with-peer": "1"},
            "devDependencies": {"typescript": "5"},
            "optionalDependencies": {"fsevents": "2"},
        },
        ("server.js",),
    )
    _package(
        root,
        "node_modules/express",
        {"name": "express", "version": "5.1.0", "dependencies": {"debug": "2", "@img/sharp": "1"}},
        ("index.js",),
    )
    _package(root, "node_modules/express/node_modules/debug", {"name": "debug", "version": "2.6.9"})
    _package(root, "node_modules/debug", {"name": "debug", "version": "4.4.0"})  # dev's copy
    _package(
        root,
        "node_modules/typescript",
        {
            "name": "typescript",
            "version": "5.9.2",
            "bin": {"tsc": "bin/tsc"},
            "dependencies": {"debug": "4"},
        },
        ("bin/tsc",),
    )
    _package(
        root,
        "node_modules/@img/sharp",
        {
            "name": "@img/sharp",
            "version": "1.0.0",
            "optionalDependencies": {
                "@img/sharp-linux-x64": "1",
                "@img/sharp-linux-arm64": "1",
                "@img/sharp-linuxmusl-x64": "1",
                "@img/sharp-darwin-arm64": "1",
            },
        },
    )
    for name, os_name, cpu, libc in (
        ("@img/sharp-linux-x64", "linux", "x64", "glibc"),
        ("@img/sharp-linux-arm64", "linux", "arm64", "glibc"),
        ("@img/sharp-linuxmusl-x64", "linux", "x64", "musl"),
        ("@img/sharp-darwin-arm64", "darwin", "arm64", None),
    ):
        manifest: dict[str, object] = {
            "name": name,
            "version": "1.0.0",
            "os": [os_name],
            "cpu": [cpu],
        }
        if libc:
            manifest["libc"] = [libc]
        _package(root, f"node_modules/{name}", manifest)
    _package(
        root,
        "node_modules/tool-with-peer",
        {
            "name": "tool-with-peer",
            "version": "1.0.0",
            "bin": "cli.js",
            "peerDependencies": {"express": "*", "optional-peer": "*", "absent-peer": "*"},
            "peerDependenciesMeta": {"optional-peer": {"optional": True}},
        },
        ("cli.js",),
    )
    _package(root, "node_modules/optional-peer", {"name": "optional-peer", "version": "1.0.0"})
    (root / "node_modules" / ".bin").mkdir()
    (root / "node_modules" / ".bin" / "tsc").symlink_to("../typescript/bin/tsc")
    (root / "node_modules" / ".package-lock.json").write_text("{}")
    return root


def _paths(root: Path, platform: str = "linux/amd64") -> set[str]:
    closure = production_closure(root, "", platform=platform)
    return {
        e.path
        for e in artifact_entries(
            closure, IgnoreRules.for_project(root), sources=root, log=lambda _m: None
        )
    }


def test_only_what_node_resolves_from_production_dependencies_is_kept(tmp_path: Path) -> None:
    root = _hoisted(tmp_path)
    closure = production_closure(root, "", platform="linux/amd64")
    kept = sorted(f"{p.name}@{p.version}" for p in closure.installed())
    assert kept == [
        "@img/sharp-linux-x64@1.0.0",
        "@img/sharp@1.0.0",
        "debug@2.6.9",  # express's nested copy, not the hoisted one typescript uses
        "express@5.1.0",
        "tool-with-peer@1.0.0",
    ]
    assert closure.left_out == [
        "@img/sharp-darwin-arm64@1.0.0",
        "@img/sharp-linux-arm64@1.0.0",
        "@img/sharp-linuxmusl-x64@1.0.0",
    ]


def test_the_target_platform_picks_the_per_platform_builds(tmp_path: Path) -> None:
    root = _hoisted(tmp_path)
    paths = _paths(root, "linux/arm64")
    assert "node_modules/@img/sharp-linux-arm64/package.json" in paths
    assert not any("sharp-linux-x64" in p for p in paths)


def test_the_artifact_tree_has_the_app_its_packages_and_their_commands(tmp_path: Path) -> None:
    paths = _paths(_hoisted(tmp_path))
    assert {
        "package.json",
        "server.js",
        "node_modules/express/index.js",
        "node_modules/express/node_modules/debug/package.json",
    } <= paths
    assert "node_modules/.bin/tool-with-peer" in paths  # a command of a kept package
    for left_out in (
        "node_modules/typescript/package.json",
        "node_modules/debug/package.json",
        "node_modules/.bin/tsc",
        "node_modules/.package-lock.json",
        "node_modules/optional-peer/package.json",
    ):
        assert left_out not in paths


def test_a_missing_production_dependency_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "staging"
    _package(
        root,
        "",
        {
            "name": "app",
            "dependencies": {"left-pad": "1", "maybe": "1"},
            "optionalDependencies": {"maybe": "1"},
        },
    )
    with pytest.raises(
        ClosureError, match=r"lacks production dependencies: left-pad \(required by app\)"
    ):
        production_closure(root, "", platform="linux/amd64")


def test_a_link_that_leaves_the_staging_directory_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "staging"
    _package(root, "", {"name": "app", "dependencies": {"outside": "1"}})
    _package(tmp_path, "elsewhere", {"name": "outside"})
    (root / "node_modules").mkdir()
    (root / "node_modules" / "outside").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ClosureError, match="points outside the project"):
        production_closure(root, "", platform="linux/amd64")


def test_a_pnpm_tree_keeps_its_symlinks_relative_and_its_workspace_packages(tmp_path: Path) -> None:
    root = tmp_path / "staging"
    store = "node_modules/.pnpm"
    _package(root, "", {"name": "mono", "private": True, "devDependencies": {"typescript": "5"}})
    _package(
        root,
        "apps/api",
        {"name": "@acme/api", "dependencies": {"ms": "2", "@acme/greet": "workspace:*"}},
        ("server.js",),
    )
    _package(
        root,
        "packages/greet",
        {"name": "@acme/greet", "dependencies": {"ms": "2"}, "scripts": {"build": "tsc"}},
        ("dist/index.js",),
    )
    _package(root, "apps/web", {"name": "@acme/web"}, ("index.js",))
    _package(
        root, f"{store}/ms@2.1.3/node_modules/ms", {"name": "ms", "version": "2.1.3"}, ("index.js",)
    )
    _package(root, f"{store}/typescript@5.9.2/node_modules/typescript", {"name": "typescript"})
    for owner in ("apps/api", "packages/greet"):
        (root / owner / "node_modules").mkdir()
        depth = "../" * (owner.count("/") + 2)
        (root / owner / "node_modules" / "ms").symlink_to(
            f"{depth}{store}/ms@2.1.3/node_modules/ms"
        )
    (root / "apps/api/node_modules/@acme").mkdir()
    (root / "apps/api/node_modules/@acme/greet").symlink_to("../../../../packages/greet")
    (root / "node_modules" / "typescript").symlink_to(
        ".pnpm/typescript@5.9.2/node_modules/typescript"
    )

    closure = production_closure(root, "apps/api", platform="linux/amd64")
    assert [p.name for p in closure.workspace_packages()] == ["@acme/greet"]
    entries = {
        e.path: e
        for e in artifact_entries(
            closure, IgnoreRules.for_project(root), sources=root, log=lambda _m: None
        )
    }
    assert entries["apps/api/node_modules/@acme/greet"].target == "../../../../packages/greet"
    assert (
        entries["apps/api/node_modules/ms"].target
        == "../../../node_modules/.pnpm/ms@2.1.3/node_modules/ms"
    )
    assert "packages/greet/dist/index.js" in entries
    assert f"{store}/ms@2.1.3/node_modules/ms/index.js" in entries
    assert not any(
        p.startswith(("apps/web", f"{store}/typescript", "node_modules/typescript"))
        for p in entries
    )
