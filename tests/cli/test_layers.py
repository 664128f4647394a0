"""The split into a dependencies layer and an app layer, and what each layer's bytes are."""

from __future__ import annotations

import hashlib
from pathlib import Path

from aether_cli.ignore import IgnoreRules
from aether_cli.layers import pack_layers, split
from aether_cli.tree import Entry, collect_entries

from chalicelib import layers as server_layers


def project(root: Path) -> Path:
    files = {
        "package.json": "{}",
        "server.js": "// app",
        "node_modules/express/index.js": "module.exports = 1",
        "node_modules/.pnpm/pad@1.0.0/node_modules/pad/index.js": "1",
        "apps/api/index.js": "// workspace package",
        "apps/api/node_modules/local/index.js": "2",
        "packages/lib/index.js": "// linked into node_modules",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "node_modules/pad").symlink_to(".pnpm/pad@1.0.0/node_modules/pad")
    (root / "node_modules/lib").symlink_to("../packages/lib")
    (root / "empty").mkdir()
    return root


def entries(root: Path) -> list[Entry]:
    return collect_entries(root, IgnoreRules.for_project(root))


def test_every_file_and_link_is_in_exactly_one_layer(tmp_path: Path) -> None:
    listed = entries(project(tmp_path / "p"))
    layers = split(listed)
    deps = {e.path: e.kind for e in layers["deps"]}
    app = {e.path: e.kind for e in layers["app"]}
    for entry in listed:
        if entry.kind != "dir":
            assert (entry.path in deps) != (entry.path in app), entry.path
    assert deps["node_modules/pad"] == "symlink"  # pnpm's links stay with their packages
    assert deps["node_modules/lib"] == "symlink"  # a workspace package's link is a dependency
    assert app["packages/lib/index.js"] == "file"  # its files are the app's
    assert app["apps/api/index.js"] == "file"
    assert deps["apps/api/node_modules/local/index.js"] == "file"
    # A directory above both kinds goes into both, so each layer stands on its own.
    assert deps["apps/api"] == app["apps/api"] == "dir"
    assert "empty" in app and "empty" not in deps
    for layer in layers.values():
        assert [e.path.encode() for e in layer] == sorted(e.path.encode() for e in layer)


def test_each_layer_is_the_same_bytes_wherever_it_is_packed(tmp_path: Path) -> None:
    first = pack_layers(entries(project(tmp_path / "a")), tmp_path / "out-a", app="shop", log=print)
    second = pack_layers(
        entries(project(tmp_path / "b")), tmp_path / "out-b", app="shop", log=print
    )
    assert first.digest == second.digest
    for (role, one), (_, other) in zip(first.layers, second.layers, strict=True):
        assert one.artifact.read_bytes() == other.artifact.read_bytes(), role
    assert [role for role, _ in first.layers] == ["deps", "app"]


def test_the_manifest_is_what_the_platform_accepts_and_names_the_app(tmp_path: Path) -> None:
    packed = pack_layers(entries(project(tmp_path / "p")), tmp_path / "out", app="shop", log=print)
    data = packed.manifest.read_bytes()
    assert hashlib.sha256(data).hexdigest() == packed.digest
    manifest = server_layers.parse(data)
    assert manifest.app == "shop"
    assert [(layer.role, layer.digest, layer.size) for layer in manifest.layers] == [
        (role, result.digest, result.size_bytes) for role, result in packed.layers
    ]
    other = pack_layers(entries(tmp_path / "p"), tmp_path / "out", app="other", log=print)
    assert other.digest != packed.digest  # a manifest, and its signature, are for one app
    assert [r.digest for _, r in other.layers] == [r.digest for _, r in packed.layers]


def test_a_source_change_leaves_the_dependencies_layer_as_it_was(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    lines: list[str] = []
    first = pack_layers(entries(root), tmp_path / "out", app="shop", log=lines.append)
    (root / "server.js").write_text("// changed")
    lines.clear()
    second = pack_layers(entries(root), tmp_path / "out", app="shop", log=lines.append)
    assert second.layers[0][1].digest == first.layers[0][1].digest
    assert second.layers[1][1].digest != first.layers[1][1].digest
    assert any(line.startswith("deps layer: nothing changed") for line in lines)


def test_a_project_without_dependencies_has_only_an_app_layer(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "package.json").write_text("{}")
    packed = pack_layers(entries(root), tmp_path / "out", app=None, log=print)
    assert [role for role, _ in packed.layers] == ["app"]
    assert server_layers.parse(packed.manifest.read_bytes()).app is None
