"""Layered artifacts: a manifest, then each layer it names, verified, into one tree."""

from __future__ import annotations

import json
import uuid

from .archives import directory, file, symlink, tar_gz
from .sites import Site, body, sha256
from .workspace import Result, Workspace, assert_refused, run_fetch, snapshot

DEPS = tar_gz(
    directory("node_modules/"),
    directory("node_modules/pad/"),
    file("node_modules/pad/index.js", b"module.exports = 1\n"),
    symlink("node_modules/link", "pad"),
)
APP = tar_gz(file("package.json", b'{"name": "hello"}\n'), file("server.js", b"// hi\n"))


def manifest(*layers: tuple[str, bytes], size_of: dict[str, int] | None = None) -> bytes:
    named = [
        {"digest": sha256(data), "role": role, "size": (size_of or {}).get(role, len(data))}
        for role, data in layers
    ]
    document = {"app": "hello", "layers": named, "schema": "aether.artifact/v2"}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def serve(site: Site, document: bytes, blobs: dict[str, bytes]) -> tuple[str, str]:
    """The manifest and each blob at /<prefix>/artifacts/<digest>/download, as the API does."""
    prefix = uuid.uuid4().hex
    for digest, data in {sha256(document): document, **blobs}.items():
        site.mount_at(f"/{prefix}/artifacts/{digest}/download", body(data))
    digest = sha256(document)
    return f"{site.origin}/{prefix}/artifacts/{digest}/download", digest


def fetch(workspace: Workspace, url: str, digest: str) -> Result:
    workspace.freeze()
    return run_fetch(
        "--url", url, "--digest", digest, "--dest", str(workspace.dest), "--format", "manifest"
    )


def test_both_layers_land_in_one_tree(storage: Site, workspace: Workspace) -> None:
    document = manifest(("deps", DEPS), ("app", APP))
    url, digest = serve(storage, document, {sha256(DEPS): DEPS, sha256(APP): APP})

    result = fetch(workspace, url, digest)

    assert result.code == 0, result.stderr
    tree = snapshot(workspace.dest)
    assert tree["server.js"].startswith("file")
    assert tree["node_modules/pad/index.js"].startswith("file")
    assert tree["node_modules/link"] == "symlink -> pad"
    assert "deps layer ok" in result.stderr and "app layer ok" in result.stderr
    assert sorted(p.name for p in workspace.dest.parent.iterdir()) == ["app", "neighbour.txt"]


def test_a_directory_may_repeat_across_layers_but_a_file_may_not(
    storage: Site, workspace: Workspace
) -> None:
    first = tar_gz(directory("apps/"), directory("apps/api/"), file("apps/api/node_modules.txt"))
    second = tar_gz(directory("apps/"), directory("apps/api/"), file("apps/api/index.js", b"1"))
    document = manifest(("deps", first), ("app", second))
    url, digest = serve(storage, document, {sha256(first): first, sha256(second): second})
    assert fetch(workspace, url, digest).code == 0

    clash = tar_gz(file("apps/api/node_modules.txt", b"again"))
    document = manifest(("deps", first), ("app", clash))
    url, digest = serve(storage, document, {sha256(first): first, sha256(clash): clash})
    assert_refused(fetch(workspace, url, digest), 8, "duplicate entry", workspace)


def test_a_tampered_layer_is_refused(storage: Site, workspace: Workspace) -> None:
    document = manifest(("deps", DEPS), ("app", APP))
    tampered = APP[:-1] + bytes([APP[-1] ^ 1])
    url, digest = serve(storage, document, {sha256(DEPS): DEPS, sha256(APP): tampered})

    assert_refused(fetch(workspace, url, digest), 6, "digest mismatch in the app layer", workspace)


def test_a_layer_of_another_size_is_refused(storage: Site, workspace: Workspace) -> None:
    document = manifest(("app", APP), size_of={"app": len(APP) + 1})
    url, digest = serve(storage, document, {sha256(APP): APP})

    assert_refused(fetch(workspace, url, digest), 6, "size mismatch in the app layer", workspace)


def test_a_tampered_manifest_is_refused(storage: Site, workspace: Workspace) -> None:
    document = manifest(("app", APP))
    url, digest = serve(storage, document, {sha256(APP): APP})
    forged = manifest(("app", tar_gz(file("server.js", b"evil()"))))
    storage.mount_at(url.removeprefix(storage.origin), body(forged))

    assert_refused(fetch(workspace, url, digest), 6, "digest mismatch: expected", workspace)


def test_a_symlink_in_one_layer_cannot_be_written_through_by_the_next(
    storage: Site, workspace: Workspace
) -> None:
    first = tar_gz(directory("lib/"), symlink("node_modules", "lib"))
    second = tar_gz(file("node_modules/evil.js", b"x"))
    document = manifest(("deps", first), ("app", second))
    url, digest = serve(storage, document, {sha256(first): first, sha256(second): second})

    assert_refused(fetch(workspace, url, digest), 8, "goes through a symlink", workspace)


def test_traversal_inside_a_layer_is_refused(storage: Site, workspace: Workspace) -> None:
    evil = tar_gz(file("../escape.js", b"x"))
    document = manifest(("app", evil))
    url, digest = serve(storage, document, {sha256(evil): evil})

    assert_refused(fetch(workspace, url, digest), 8, "'..' in path", workspace)


def test_a_malformed_manifest_is_refused(storage: Site, workspace: Workspace) -> None:
    document = b'{"schema": "aether.artifact/v2", "layers": [{"role": "app"}]}'
    url, digest = serve(storage, document, {})

    assert_refused(fetch(workspace, url, digest), 7, "not a valid manifest", workspace)


def test_an_oversized_manifest_is_refused(storage: Site, workspace: Workspace) -> None:
    document = b" " * (64 * 1024 + 1)
    url, digest = serve(storage, document, {})

    assert_refused(fetch(workspace, url, digest), 8, "too large", workspace)


def test_a_manifest_url_must_name_its_digest(workspace: Workspace) -> None:
    result = fetch(workspace, "http://127.0.0.1:9/artifacts/x/download", "a" * 64)
    assert_refused(result, 2, "must name the manifest's digest", workspace)
