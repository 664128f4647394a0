"""The staging copy: a mirror of the project that installs and builds may write into."""

from __future__ import annotations

import os
from pathlib import Path

from aether_cli.ignore import IgnoreRules
from aether_cli.staging import SyncResult, sync_tree


def _sync(source: Path, tmp_path: Path) -> tuple[Path, SyncResult]:
    mirror = tmp_path / "mirror"
    result = sync_tree(
        source,
        mirror,
        IgnoreRules.for_project(source),
        state_file=tmp_path / "state.json",
        log=lambda _m: None,
    )
    return mirror, result


def _tree(root: Path) -> dict[str, bytes | str]:
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[rel] = "-> " + str(path.readlink())
        elif path.is_file():
            found[rel] = path.read_bytes()
    return found


def _source(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    (source / "lib").mkdir(parents=True)
    (source / "node_modules" / "dev-only").mkdir(parents=True)
    (source / ".git").mkdir()
    (source / "package.json").write_text('{"name": "x"}')
    (source / "lib" / "a.js").write_text("a")
    (source / "lib" / "current").symlink_to("a.js")
    (source / ".env").write_text("SECRET=1")
    (source / "secret.pem").write_text("key")
    (source / ".aetherignore").write_text("*.pem\n")
    (source / "node_modules" / "dev-only" / "index.js").write_text("dev")
    (source / ".git" / "HEAD").write_text("ref")
    return source


def test_the_mirror_holds_the_sources_and_env_files_but_not_node_modules_git_or_ignored(
    tmp_path: Path,
) -> None:
    source = _source(tmp_path)
    mirror, result = _sync(source, tmp_path)
    assert _tree(mirror) == {
        ".env": b"SECRET=1",  # a build may read it; the artifact still leaves it out
        "lib/a.js": b"a",
        "lib/current": "-> a.js",
        "package.json": b'{"name": "x"}',
    }
    assert result.copied == 4


def test_an_unchanged_project_copies_nothing_and_keeps_what_the_build_wrote(tmp_path: Path) -> None:
    source = _source(tmp_path)
    mirror, _ = _sync(source, tmp_path)
    (mirror / "dist").mkdir()
    (mirror / "dist" / "out.js").write_text("built")
    (mirror / "node_modules").mkdir()
    (mirror / "node_modules" / "installed.js").write_text("installed")

    _, again = _sync(source, tmp_path)
    assert (again.copied, again.removed, again.changed) == (0, 0, False)
    assert (mirror / "dist" / "out.js").read_text() == "built"
    assert (mirror / "node_modules" / "installed.js").read_text() == "installed"


def test_changes_in_the_project_reach_the_mirror(tmp_path: Path) -> None:
    source = _source(tmp_path)
    mirror, _ = _sync(source, tmp_path)
    (source / "lib" / "a.js").write_text("A, changed")
    (source / "lib" / "b.js").write_text("new")
    (source / "package.json").unlink()
    (source / "lib" / "current").unlink()
    (source / "lib" / "current").symlink_to("b.js")

    _, result = _sync(source, tmp_path)
    assert (result.copied, result.removed) == (3, 1)
    assert _tree(mirror)["lib/a.js"] == b"A, changed"
    assert _tree(mirror)["lib/current"] == "-> b.js"
    assert "package.json" not in _tree(mirror)


def test_a_mirrored_file_the_build_changed_is_copied_again(tmp_path: Path) -> None:
    source = _source(tmp_path)
    mirror, _ = _sync(source, tmp_path)
    (mirror / "lib" / "a.js").write_text("rewritten by a build step")
    _, result = _sync(source, tmp_path)
    assert result.copied == 1
    assert (mirror / "lib" / "a.js").read_text() == "a"


def test_the_project_itself_is_never_written(tmp_path: Path) -> None:
    source = _source(tmp_path)
    before = {p: (p.lstat().st_mtime_ns, p.lstat().st_ino) for p in source.rglob("*")}
    before_bytes = _tree(source)
    mirror, _ = _sync(source, tmp_path)
    for path in mirror.rglob("*"):  # writing every copy must not reach the sources
        if path.is_file() and not path.is_symlink():
            path.write_text("scribbled")
    _sync(source, tmp_path)
    assert _tree(source) == before_bytes
    assert {p: (p.lstat().st_mtime_ns, p.lstat().st_ino) for p in source.rglob("*")} == before


def test_copies_keep_the_sources_mtime_and_exec_bit(tmp_path: Path) -> None:
    source = _source(tmp_path)
    script = source / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    os.utime(script, ns=(1_000_000_000, 1_000_000_000))
    mirror, _ = _sync(source, tmp_path)
    copied = (mirror / "run.sh").stat()
    assert copied.st_mtime_ns == 1_000_000_000
    assert copied.st_mode & 0o777 == 0o755
