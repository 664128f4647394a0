"""The archive: deterministic bytes, standard tools accept it, rules for what goes in."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from aether_cli import pack as pack_module
from aether_cli.ignore import IgnoreFileError, IgnoreRules
from aether_cli.pack import PACK_STAMP_NAME, PackError, pack_tree
from aether_cli.pgzip import BLOCK_SIZE, ParallelGzipWriter
from aether_cli.tar_format import tar_header
from aether_cli.tree import Entry

requires_gnu_tar = pytest.mark.skipif(
    shutil.which("tar") is None, reason="GNU tar is not installed"
)
requires_gzip = pytest.mark.skipif(shutil.which("gzip") is None, reason="gzip is not installed")


def _pack(root: Path, out: Path, **kwargs: object) -> tuple[pack_module.PackResult, list[str]]:
    messages: list[str] = []
    result = pack_tree(root, out, log=messages.append, **kwargs)
    return result, messages


def _names(archive: Path) -> list[str]:
    with tarfile.open(archive, "r:gz") as tar:
        return [m.name for m in tar.getmembers()]


def _disk_tree(root: Path, skip: Callable[[str], bool] = lambda rel: False) -> dict[str, object]:
    """What the packer should see: path -> ("dir"|bytes|"-> target", normalised mode)."""
    found: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if skip(rel):
                continue
            if path.is_symlink():
                found[rel] = ("-> " + str(path.readlink()), 0o777)
            elif path.is_dir():
                found[rel] = ("dir", 0o755)
            else:
                mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
                found[rel] = (path.read_bytes(), mode)
    return found


# -- determinism ---------------------------------------------------------------


def test_same_tree_gives_same_digest_whatever_mtimes_umask_order_and_cwd(
    tmp_path: Path, sample_tree_factory: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = sample_tree_factory(tmp_path / "one", mtime=1_000_000_000)
    second = sample_tree_factory(tmp_path / "two", reverse=True, mtime=1_700_000_000, umask=0o077)

    monkeypatch.chdir(first)
    result_one, _ = _pack(Path(), Path(".aether/build"))
    monkeypatch.chdir(tmp_path)
    result_two, _ = _pack(second, tmp_path / "elsewhere")

    assert result_one.digest == result_two.digest
    assert result_one.artifact.read_bytes() == result_two.artifact.read_bytes()
    assert result_one.digest == hashlib.sha256(result_two.artifact.read_bytes()).hexdigest()
    assert result_one.size_bytes == result_two.artifact.stat().st_size


def test_thread_count_never_changes_the_bytes(sample_tree: Path, tmp_path: Path) -> None:
    digests = set()
    for threads in (1, 2, 7):
        result, _ = _pack(sample_tree, tmp_path / f"out{threads}", threads=threads)
        digests.add(result.digest)
    assert len(digests) == 1
    # The sample spans several blocks, so block joins were exercised.
    with gzip.open(result.artifact) as f:
        assert len(f.read()) > 3 * BLOCK_SIZE


def test_packing_twice_in_place_is_stable(sample_tree: Path) -> None:
    out = sample_tree / ".aether" / "build"
    first, _ = _pack(sample_tree, out)
    second, _ = _pack(sample_tree, out)
    assert first.digest == second.digest
    assert sorted(p.name for p in out.iterdir()) == [
        "app.tar.gz",
        "manifest.json",
        PACK_STAMP_NAME,
    ]


def test_an_unchanged_tree_reuses_the_last_archive(sample_tree: Path) -> None:
    out = sample_tree / ".aether" / "build"
    first, _ = _pack(sample_tree, out)
    written = first.artifact.stat().st_mtime_ns
    second, messages = _pack(sample_tree, out)
    assert not first.reused and second == dataclasses.replace(first, reused=True)
    assert second.artifact.stat().st_mtime_ns == written  # not written again
    assert any("reusing app.tar.gz" in m for m in messages)


def test_an_edit_that_keeps_size_and_mtime_is_still_packed(sample_tree: Path) -> None:
    out = sample_tree / ".aether" / "build"
    first, _ = _pack(sample_tree, out)
    util = sample_tree / "lib" / "util.js"
    before = util.stat()
    util.write_bytes(util.read_bytes().replace(b"42", b"43"))
    os.utime(util, ns=(before.st_atime_ns, before.st_mtime_ns))
    second, messages = _pack(sample_tree, out)
    assert second.digest != first.digest
    assert not any("reusing" in m for m in messages)


def test_a_touched_or_missing_archive_is_packed_again(sample_tree: Path) -> None:
    out = sample_tree / ".aether" / "build"
    first, _ = _pack(sample_tree, out)
    with first.artifact.open("ab") as archive:
        archive.write(b"tampered")
    again, _ = _pack(sample_tree, out)
    assert again.digest == first.digest
    assert again.size_bytes == first.size_bytes
    first.artifact.unlink()
    third, messages = _pack(sample_tree, out)
    assert third.digest == first.digest
    assert not any("reusing" in m for m in messages)


def test_a_one_byte_change_gives_a_new_digest(sample_tree: Path, tmp_path: Path) -> None:
    before, _ = _pack(sample_tree, tmp_path / "before")
    (sample_tree / "server.js").write_text("// changed\n")
    after, _ = _pack(sample_tree, tmp_path / "after")
    assert before.digest != after.digest


# -- the archive is standard ---------------------------------------------------


@requires_gzip
@requires_gnu_tar
def test_gzip_and_gnu_tar_accept_the_archive(sample_tree: Path, tmp_path: Path) -> None:
    result, _ = _pack(sample_tree, tmp_path / "out")
    subprocess.run(["gzip", "-t", str(result.artifact)], check=True)
    listing = subprocess.run(
        ["tar", "-tzf", str(result.artifact)], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert "node_modules/.bin/x" in listing
    assert "node_modules/x/lib/" + "deeply-nested-directory/" * 4 + "index.js" in listing


@requires_gnu_tar
def test_gnu_tar_extraction_reproduces_files_modes_and_symlinks(
    sample_tree: Path, tmp_path: Path
) -> None:
    result, _ = _pack(sample_tree, tmp_path / "out")
    target = tmp_path / "extracted"
    target.mkdir()
    subprocess.run(["tar", "-xzf", str(result.artifact), "-C", str(target)], check=True)
    assert _disk_tree(target) == _disk_tree(sample_tree)
    assert (target / "node_modules/.bin/x").readlink() == Path("../x/bin/x.js")
    assert (target / "node_modules/.bin/x").read_text().startswith("#!/usr/bin/env node")
    assert (target / "node_modules/x/bin/x.js").stat().st_mode & 0o777 == 0o755


def test_python_data_filter_extraction_reproduces_the_tree(
    sample_tree: Path, tmp_path: Path
) -> None:
    # The fetcher extracts with tarfile's "data" filter: nothing may be refused.
    result, _ = _pack(sample_tree, tmp_path / "out")
    target = tmp_path / "extracted"
    with tarfile.open(result.artifact, "r:gz") as tar:
        tar.extractall(target, filter="data")
    assert _disk_tree(target) == _disk_tree(sample_tree)


def test_entries_are_normalised_and_sorted_bytewise(sample_tree: Path, tmp_path: Path) -> None:
    result, _ = _pack(sample_tree, tmp_path / "out")
    with tarfile.open(result.artifact, "r:gz") as tar:
        members = tar.getmembers()
    paths = [m.name for m in members]
    assert paths == sorted(paths, key=lambda p: p.encode())
    assert paths.index("a-c.txt") < paths.index("a/b.txt")  # '-' < '/': not per-directory
    assert paths[0] == "Zed.txt"
    for member in members:
        assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (
            0,
            0,
            0,
            "",
            "",
        )
        expected = {tarfile.DIRTYPE: {0o755}, tarfile.SYMTYPE: {0o777}}.get(
            member.type, {0o644, 0o755}
        )
        assert member.mode in expected, member.name
        assert member.type in (tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE)


def test_gzip_header_has_no_name_no_time_and_a_fixed_os_byte(
    sample_tree: Path, tmp_path: Path
) -> None:
    result, _ = _pack(sample_tree, tmp_path / "out")
    header = result.artifact.read_bytes()[:10]
    assert header == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def test_tar_headers_match_python_tarfile_pax_output() -> None:
    cases = [
        Entry("a.js", "", "file", 0o644, 10),
        Entry("bin/x", "", "file", 0o755, 0),
        Entry("node_modules", "", "dir", 0o755),
        Entry("node_modules/.bin/x", "", "symlink", 0o777, target="../x/bin/x.js"),
        Entry("d/" + "l" * 120, "", "file", 0o644, 5),
        Entry("h\u00e9llo/w\u00f6rld.txt", "", "file", 0o644, 3),
        Entry("s", "", "symlink", 0o777, target="t" * 150),
        Entry("d" * 100, "", "dir", 0o755),
    ]
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE}
    for entry in cases:
        info = tarfile.TarInfo(entry.path)
        info.mode, info.size, info.type, info.linkname = (
            entry.mode,
            entry.size,
            types[entry.kind],
            entry.target,
        )
        assert tar_header(entry, entry.size) == info.tobuf(
            tarfile.PAX_FORMAT, "utf-8", "surrogateescape"
        ), entry.path


# -- the parallel gzip writer --------------------------------------------------


@pytest.mark.parametrize(
    "size", [0, 1, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 3 * BLOCK_SIZE + 12345]
)
def test_parallel_gzip_round_trips_and_ignores_thread_count(size: int, tmp_path: Path) -> None:
    data = (b"aether " * (size // 7 + 1))[:size]
    data = bytes(b ^ (i % 251) for i, b in enumerate(data[:5000])) + data[5000:]
    outputs = []
    for threads in (1, 3):
        path = tmp_path / f"{size}-{threads}.gz"
        with path.open("wb") as raw, ParallelGzipWriter(raw, threads=threads) as gz:
            # Uneven writes: block boundaries must not depend on how data arrives.
            for start in range(0, len(data), 70_001):
                gz.write(data[start : start + 70_001])
        assert gz.uncompressed_size == size
        assert gz.digest == hashlib.sha256(path.read_bytes()).hexdigest()
        assert gzip.decompress(path.read_bytes()) == data
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1]
    trailer = outputs[0][-8:]
    assert int.from_bytes(trailer[:4], "little") == zlib.crc32(data)


def test_parallel_gzip_ratio_stays_close_to_plain_gzip(sample_tree: Path, tmp_path: Path) -> None:
    data = (sample_tree / "lib" / "data.bin").read_bytes()
    path = tmp_path / "x.gz"
    with path.open("wb") as raw, ParallelGzipWriter(raw, threads=2) as gz:
        gz.write(data)
    assert path.stat().st_size <= len(gzip.compress(data, 6)) * 1.02


# -- what goes in --------------------------------------------------------------


def test_defaults_leave_out_git_aether_env_and_the_ignore_file(
    sample_tree: Path, tmp_path: Path
) -> None:
    (sample_tree / ".git" / "objects").mkdir(parents=True)
    (sample_tree / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (sample_tree / ".aether" / "cache").mkdir(parents=True)
    (sample_tree / ".env").write_text("SECRET=1\n")
    (sample_tree / ".env.production").write_text("SECRET=2\n")
    (sample_tree / "lib" / ".env.local").write_text("SECRET=3\n")
    (sample_tree / ".environment.md").write_text("not an env file\n")
    (sample_tree / ".aetherignore").write_text("# nothing else\n")

    result, messages = _pack(sample_tree, tmp_path / "out")
    names = _names(result.artifact)

    for left_out in (
        ".git",
        ".git/HEAD",
        ".aether",
        ".env",
        ".env.production",
        "lib/.env.local",
        ".aetherignore",
    ):
        assert left_out not in names
    assert ".environment.md" in names
    assert "node_modules/x/package.json" in names  # node_modules is the point
    warnings = [m for m in messages if m.startswith("warning:") and ".env" in m]
    assert len(warnings) == 1
    assert "3 .env file(s)" in warnings[0]
    assert ".env.production" in warnings[0] and "lib/.env.local" in warnings[0]


def test_aetherignore_can_bring_back_an_env_template(sample_tree: Path, tmp_path: Path) -> None:
    (sample_tree / ".env").write_text("SECRET=1\n")
    (sample_tree / ".env.example").write_text("SECRET=\n")
    (sample_tree / ".aetherignore").write_text("!.env.example\n")
    result, messages = _pack(sample_tree, tmp_path / "out")
    names = _names(result.artifact)
    assert ".env.example" in names
    assert ".env" not in names
    assert any("1 .env file(s)" in m for m in messages)


def test_aetherignore_rules_apply_to_the_archive(sample_tree: Path, tmp_path: Path) -> None:
    (sample_tree / "coverage" / "lcov").mkdir(parents=True)
    (sample_tree / "coverage" / "lcov" / "index.html").write_text("x")
    (sample_tree / "lib" / "util.test.js").write_text("test")
    (sample_tree / "lib" / "keep.test.js").write_text("kept")
    (sample_tree / "notes.md").write_text("x")
    (sample_tree / "docs" / "notes.md").write_text("x")
    (sample_tree / ".aetherignore").write_text(
        "# tests and reports stay home\n"
        "\n"
        "coverage/\n"
        "**/*.test.js\n"
        "!lib/keep.test.js\n"
        "/notes.md\n"
        "lib/*.bin\n"
        "node_modules/**/deeply-nested-directory/**\n"
    )
    result, _ = _pack(sample_tree, tmp_path / "out")
    names = _names(result.artifact)
    assert not any(n.startswith("coverage") for n in names)
    assert "lib/util.test.js" not in names
    assert "lib/keep.test.js" in names
    assert "notes.md" not in names
    assert "docs/notes.md" in names  # anchored pattern: only at the root
    assert "lib/data.bin" not in names
    assert "node_modules/x/lib/deeply-nested-directory" in names
    assert not any("deeply-nested-directory/deeply" in n for n in names)
    manifest_paths = [f["path"] for f in json.loads(result.manifest.read_text())["files"]]
    assert manifest_paths == [n.rstrip("/") for n in names]


@pytest.mark.parametrize(
    ("patterns", "path", "is_dir", "excluded"),
    [
        ("# a comment\n", "# a comment", False, False),
        ("\\#literal\n", "#literal", False, True),
        ("*.log\n", "deep/in/tree/debug.log", False, True),
        ("*.log\n!keep.log\n", "keep.log", False, False),
        ("*.log\n!keep.log\n", "sub/keep.log", False, False),
        ("build/\n", "build", True, True),
        ("build/\n", "build", False, False),  # a file named build is not a directory
        ("build/\n", "src/build", True, True),
        ("/build\n", "src/build", True, False),
        ("/build\n", "build", False, True),
        ("src/*.js\n", "src/a.js", False, True),
        ("src/*.js\n", "src/deeper/a.js", False, False),
        ("src/**/*.js\n", "src/deeper/still/a.js", False, True),
        ("src/**/*.js\n", "src/a.js", False, True),
        ("**/fixtures\n", "a/b/fixtures", True, True),
        ("**/fixtures\n", "fixtures", True, True),
        ("logs/**\n", "logs/x/y.txt", False, True),
        ("logs/**\n", "logs", True, False),
        ("file?.txt\n", "file1.txt", False, True),
        ("file?.txt\n", "file10.txt", False, False),
        ("file[0-3].txt\n", "file2.txt", False, True),
        ("file[!0-3].txt\n", "file7.txt", False, True),
        ("file[!0-3].txt\n", "file2.txt", False, False),
        ("trailing-space.txt   \n", "trailing-space.txt", False, True),
        ("\\!important\n", "!important", False, True),
        ("a*b\n", "a/b", False, False),  # a single star never crosses "/"
    ],
)
def test_ignore_rules_follow_gitignore(
    patterns: str, path: str, is_dir: bool, excluded: bool
) -> None:
    assert IgnoreRules.parse(patterns).excludes(path, is_dir=is_dir) is excluded


def test_a_file_under_an_excluded_directory_cannot_be_brought_back(
    sample_tree: Path, tmp_path: Path
) -> None:
    (sample_tree / ".aetherignore").write_text("lib/\n!lib/util.js\n")
    result, _ = _pack(sample_tree, tmp_path / "out")
    assert not any(n.startswith("lib") for n in _names(result.artifact))


def test_special_files_are_skipped_with_a_warning(sample_tree: Path, tmp_path: Path) -> None:
    os.mkfifo(sample_tree / "a-fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock_path = sample_tree / "s.sock"
    if len(str(sock_path)) < 100:  # AF_UNIX path limit
        sock.bind(str(sock_path))
    try:
        result, messages = _pack(sample_tree, tmp_path / "out")
    finally:
        sock.close()
    names = _names(result.artifact)
    assert "a-fifo" not in names and "s.sock" not in names
    assert any("special file" in m and "a-fifo" in m for m in messages)


def test_symlinks_leaving_the_project_are_skipped_with_a_warning(
    sample_tree: Path, tmp_path: Path
) -> None:
    (tmp_path / "outside.txt").write_text("not yours")
    (sample_tree / "abs-link").symlink_to(tmp_path / "outside.txt")
    (sample_tree / "lib" / "up-link").symlink_to("../../outside.txt")
    (sample_tree / "self").symlink_to(".")
    (sample_tree / "sneaky").symlink_to("self/..")  # looks inside, resolves outside
    (sample_tree / "dangling-inside").symlink_to("not-there-yet.js")

    result, messages = _pack(sample_tree, tmp_path / "out")
    names = _names(result.artifact)

    for skipped in ("abs-link", "lib/up-link", "sneaky"):
        assert skipped not in names
    assert "self" in names and "dangling-inside" in names
    joined = "\n".join(messages)
    assert "absolute target" in joined and "abs-link" in joined
    assert "outside the project" in joined and "lib/up-link" in joined and "sneaky" in joined


def test_output_directory_inside_the_project_is_left_out(sample_tree: Path) -> None:
    result, _ = _pack(sample_tree, sample_tree / "dist" / "aether")
    assert not any(n.startswith("dist/aether") for n in _names(result.artifact))


# -- the manifest --------------------------------------------------------------


def test_manifest_lists_every_entry_with_hashes_sizes_and_modes(
    sample_tree: Path, tmp_path: Path
) -> None:
    result, _ = _pack(sample_tree, tmp_path / "out")
    manifest = json.loads(result.manifest.read_text())

    assert manifest["schema"] == "aether.manifest/v1"
    assert manifest["artifact"] == {
        "name": "app.tar.gz",
        "sha256": result.digest,
        "size_bytes": result.size_bytes,
    }
    files = manifest["files"]
    paths = [f["path"] for f in files]
    assert paths == sorted(paths, key=lambda p: p.encode())
    by_path = {f["path"]: f for f in files}
    data = (sample_tree / "lib" / "data.bin").read_bytes()
    assert by_path["lib/data.bin"] == {
        "path": "lib/data.bin",
        "type": "file",
        "mode": "0644",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert by_path["node_modules/x/bin/x.js"]["mode"] == "0755"
    assert by_path["node_modules/.bin/x"] == {
        "path": "node_modules/.bin/x",
        "type": "symlink",
        "mode": "0777",
        "target": "../x/bin/x.js",
    }
    assert by_path["empty"] == {"path": "empty", "type": "dir", "mode": "0755"}
    regular = [f for f in files if f["type"] == "file"]
    assert manifest["file_count"] == result.file_count == len(regular)
    assert manifest["content_bytes"] == sum(f["size"] for f in regular)
    assert result.entry_count == len(files) == len(_names(result.artifact))


# -- failures ------------------------------------------------------------------


def test_a_read_failure_leaves_no_partial_artifact(
    sample_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable(path: str, size: int) -> bytes:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(pack_module, "_read_small_file", unreadable)
    out = tmp_path / "out"
    with pytest.raises(PackError, match="cannot read"):
        pack_tree(sample_tree, out)
    assert list(out.iterdir()) == []


def test_unreadable_aetherignore_is_a_pack_error(sample_tree: Path, tmp_path: Path) -> None:
    (sample_tree / ".aetherignore").write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(IgnoreFileError, match=r"\.aetherignore"):
        pack_tree(sample_tree, tmp_path / "out")
