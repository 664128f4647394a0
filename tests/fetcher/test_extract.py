"""The fetcher's extraction half: exact contents, hostile archives, and an existing DEST."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from .archives import (
    Member,
    directory,
    extended_header_bomb,
    file,
    hardlink,
    special,
    symlink,
    tar_gz,
    zeros,
)
from .sites import Site, body, sha256
from .workspace import (
    FETCH,
    Result,
    Workspace,
    assert_refused,
    run_fetch,
    run_fetch_measured,
    snapshot,
)

MiB = 1024 * 1024

HONEST = [
    directory("bin"),
    file("bin/start.sh", b"#!/bin/sh\nexec node server.js\n", mode=0o755),
    file("copy.js", b"module.exports = 1;\n"),
    hardlink("copy-link.js", "copy.js"),
    directory("empty"),
    directory("node_modules"),
    directory("node_modules/.bin"),
    symlink("node_modules/.bin/left-pad", "../left-pad/cli.js"),
    directory("node_modules/left-pad"),
    file("node_modules/left-pad/cli.js", b"#!/usr/bin/env node\n", mode=0o755),
    file("node_modules/left-pad/package.json", b'{"name": "left-pad"}\n'),
    symlink("pad", "node_modules/left-pad"),
    file("package.json", b'{"name": "hello", "scripts": {"start": "node server.js"}}\n'),
    file("private.txt", b"group may read\n", mode=0o640),
    file("server.js", b"require('http').createServer().listen(process.env.PORT);\n"),
]


HONEST_ARCHIVE = tar_gz(*HONEST)  # built once: the members' contents are read as it's built


def serve(site: Site, data: bytes) -> tuple[str, str]:
    return site.mount(body(data)), sha256(data)


def publish(site: Site, *members: Member) -> tuple[str, str]:
    return serve(site, tar_gz(*members))


def fetch(workspace: Workspace, url: str, digest: str, *extra: str) -> Result:
    workspace.freeze()
    return run_fetch("--url", url, "--digest", digest, "--dest", str(workspace.dest), *extra)


def fetch_measured(workspace: Workspace, url: str, digest: str) -> tuple[Result, int]:
    """The fetch and the fetcher's peak resident memory in bytes."""
    workspace.freeze()
    return run_fetch_measured("--url", url, "--digest", digest, "--dest", str(workspace.dest))


def expected_tree() -> dict[str, str]:
    """HONEST as `snapshot` should see it once extracted."""
    by_name = {member.info.name: member for member in HONEST}
    tree = {}
    for name, member in by_name.items():
        if member.info.isdir():
            tree[name] = "dir"
        elif member.info.issym():
            tree[name] = f"symlink -> {member.info.linkname}"
        else:
            source = by_name[member.info.linkname] if member.info.islnk() else member
            tree[name] = f"file {oct(source.info.mode)} {sha256(source.data)}"
    return tree


def test_honest_archive_extracts_exactly(storage: Site, workspace: Workspace) -> None:
    url, digest = serve(storage, HONEST_ARCHIVE)

    result = fetch(workspace, url, digest)

    assert result.code == 0, result.stderr
    assert snapshot(workspace.dest) == expected_tree()
    copy, link = workspace.dest / "copy.js", workspace.dest / "copy-link.js"
    assert copy.stat().st_ino == link.stat().st_ino  # a hardlink stays a hardlink
    assert (workspace.dest / "pad" / "package.json").read_text() == '{"name": "left-pad"}\n'
    assert stat.S_IMODE(workspace.dest.stat().st_mode) == 0o755
    assert sorted(p.name for p in workspace.dest.parent.iterdir()) == ["app", "neighbour.txt"]
    assert "extracted 15 entries" in result.stderr


@pytest.mark.parametrize("mode", [0o4755, 0o2777, 0o1777, 0o666, 0o400, 0o111, 0o000])
def test_a_file_gets_the_mode_the_data_filter_gives_it(
    storage: Site, workspace: Workspace, mode: int
) -> None:
    member = file("run.sh", b"x", mode=mode)
    url, digest = publish(storage, member)
    expected = tarfile.data_filter(member.info, str(workspace.root)).mode

    result = fetch(workspace, url, digest)

    assert result.code == 0, result.stderr
    assert expected is not None and not expected & 0o7022  # no setuid/setgid/sticky, no go+w
    assert stat.S_IMODE((workspace.dest / "run.sh").stat().st_mode) == expected


def test_archive_with_dot_slash_names_like_tar_c_makes(storage: Site, workspace: Workspace) -> None:
    url, digest = publish(
        storage, directory("."), file("./package.json", b"{}\n"), directory("./lib"),
        file("./lib/a.js", b"1\n"),
    )  # fmt: skip

    result = fetch(workspace, url, digest)

    assert result.code == 0, result.stderr
    assert set(snapshot(workspace.dest)) == {"package.json", "lib", "lib/a.js"}


# Each hostile archive is built from the test's tmp_path, so absolute paths aim at a place
# the workspace snapshot watches.
Hostile = Callable[[Path], list[Member]]

HOSTILE: dict[str, tuple[Hostile, str]] = {
    "dot-dot entry": (
        lambda root: [file("../escaped.txt", b"x")],
        "'..' in path",
    ),
    "dot-dot inside a path": (
        lambda root: [file("lib/../../escaped.txt", b"x")],
        "'..' in path",
    ),
    "absolute path": (
        lambda root: [file(str(root / "absolute.txt"), b"x")],
        "absolute path",
    ),
    "symlink pointing outside": (
        lambda root: [symlink("evil", "../../etc")],
        "symlink points outside the tree",
    ),
    "absolute symlink": (
        lambda root: [symlink("passwd", "/etc/passwd")],
        "symlink to an absolute path",
    ),
    # Lexically d/l1/.. is d, but on disk d/l1 is the root: tarfile's data filter catches it.
    "symlink chain that escapes only on disk": (
        lambda root: [directory("d"), symlink("d/l1", ".."), symlink("l2", "d/l1/..")],
        "outside the destination",
    ),
    "symlink outside then a file through it": (
        lambda root: [symlink("up", ".."), file("up/escaped.txt", b"x")],
        "symlink points outside the tree",
    ),
    "file written through an inside symlink": (
        lambda root: [directory("real"), symlink("alias", "real"), file("alias/x.js", b"x")],
        "path goes through a symlink",
    ),
    "hardlink pointing outside": (
        lambda root: [hardlink("h", "../neighbour.txt")],
        "hardlink target is not a regular file earlier in the archive",
    ),
    "absolute hardlink": (
        lambda root: [hardlink("h", str(root / "pod" / "neighbour.txt"))],
        "hardlink target is not a regular file earlier in the archive",
    ),
    "hardlink to a symlink": (
        lambda root: [file("a.js"), symlink("s", "a.js"), hardlink("h", "s")],
        "hardlink target is not a regular file earlier in the archive",
    ),
    "character device": (
        lambda root: [special("dev/null", tarfile.CHRTYPE)],
        "not a regular file, directory or link (device or FIFO)",
    ),
    "block device": (
        lambda root: [special("dev/sda", tarfile.BLKTYPE)],
        "not a regular file, directory or link (device or FIFO)",
    ),
    "FIFO": (
        lambda root: [special("pipe", tarfile.FIFOTYPE)],
        "not a regular file, directory or link (device or FIFO)",
    ),
    "duplicate entry": (
        lambda root: [file("a.js", b"1"), file("a.js", b"2")],
        "duplicate entry",
    ),
    # A GNU sparse member's data is not its contents: written as is, it would misplace bytes.
    "sparse file": (
        lambda root: [special("holes", tarfile.GNUTYPE_SPARSE)],
        "a sparse file",
    ),
    "file under a file": (
        lambda root: [file("a.js", b"1"), file("a.js/b.js", b"2")],
        "'a.js' is not a directory on disk",
    ),
    "symlink replacing a directory its files implied": (
        lambda root: [file("lib/a.js", b"1"), symlink("lib", "..")],
        "duplicate entry",
    ),
    "archive root as a file": (
        lambda root: [file(".", b"x")],
        "the archive root must be a directory",
    ),
    "over-long path": (
        lambda root: [file("/".join(["d" * 99] * 42) + "/x.js")],
        "path longer than 4096 characters",
    ),
    "over-long path component": (
        lambda root: [file("n" * 256)],
        "path component longer than 255 bytes",
    ),
    "over-long symlink target": (
        lambda root: [symlink("l", "/".join(["d" * 99] * 42))],
        "path longer than 4096 characters",
    ),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_hostile_archive_is_refused_and_leaves_nothing(
    case: str, storage: Site, workspace: Workspace
) -> None:
    build, phrase = HOSTILE[case]
    # Honest entries first, so a refusal happens after something was already extracted.
    url, digest = publish(storage, file("first.js", b"1\n"), *build(workspace.root))

    result = fetch(workspace, url, digest)

    assert_refused(result, 8, phrase, workspace)


def test_gzip_bomb_is_refused(storage: Site, workspace: Workspace) -> None:
    url, digest = publish(storage, zeros("bomb.bin", 64 * MiB))

    result = fetch(workspace, url, digest, "--max-bytes", str(MiB))

    assert_refused(result, 8, f"archive too large: more than {MiB} bytes uncompressed", workspace)


def test_many_files_adding_up_past_the_size_limit_are_refused(
    storage: Site, workspace: Workspace
) -> None:
    url, digest = publish(storage, *(zeros(f"part{i}.bin", MiB // 4) for i in range(8)))

    result = fetch(workspace, url, digest, "--max-bytes", str(MiB))

    assert_refused(result, 8, "archive too large", workspace)


def test_bomb_hidden_in_a_pax_header_is_refused(storage: Site, workspace: Workspace) -> None:
    # tarfile reads a pax header whole into memory: its size is checked before that.
    member = file("package.json", b"{}\n")
    member.info.pax_headers = {"comment": "x" * (2 * MiB)}
    url, digest = publish(storage, member)

    result = fetch(workspace, url, digest)

    assert_refused(result, 8, "a pax header of 2097169 bytes (more than 81920)", workspace)


@pytest.mark.parametrize(
    ("kind", "phrase"),
    [(tarfile.GNUTYPE_LONGNAME, "long-name"), (tarfile.XHDTYPE, "pax")],
    ids=["long name", "pax"],
)
def test_a_huge_extended_header_is_refused_before_it_is_read(
    kind: bytes, phrase: str, storage: Site, workspace: Workspace
) -> None:
    size = 512 * MiB
    archive = extended_header_bomb(kind, size)
    assert len(archive) < 2 * MiB  # a small download...
    url, digest = serve(storage, archive)

    result, peak = fetch_measured(workspace, url, digest)

    # ... refused at its header: its data is neither read whole nor echoed.
    assert_refused(result, 8, f"a {phrase} header of {size} bytes (more than", workspace)
    assert len(result.error_lines[0]) < 200
    assert peak < 128 * MiB, f"the fetcher grew to {peak // MiB} MiB"


def test_paths_deeper_than_the_limit_are_refused_without_growing(
    storage: Site, workspace: Workspace
) -> None:
    members = [file("/".join(["d"] * 899) + f"/f{i}.js") for i in range(300)]
    url, digest = publish(storage, file("first.js"), *members)

    result, peak = fetch_measured(workspace, url, digest)

    assert_refused(result, 8, "deeper than 128 directories", workspace)
    assert peak < 128 * MiB, f"the fetcher grew to {peak // MiB} MiB"
    assert "(1803 characters)" in result.error_lines[0]  # the name is cut, not echoed whole


def test_many_deep_paths_within_the_limit_keep_memory_small(
    storage: Site, workspace: Workspace
) -> None:
    # Every directory a path implies is remembered once, not once per path below it.
    members = [file("/".join(["d"] * 100) + f"/e{i}/f.js") for i in range(300)]
    url, digest = publish(storage, *members)

    result, peak = fetch_measured(workspace, url, digest)

    assert result.code == 0, result.stderr
    assert peak < 128 * MiB, f"the fetcher grew to {peak // MiB} MiB"


def test_a_path_too_deep_for_the_extractor_is_refused_not_a_traceback(
    storage: Site, workspace: Workspace
) -> None:
    url, digest = publish(storage, file("/".join(["d"] * 1999) + "/x.js"))

    result = fetch(workspace, url, digest, "--max-depth", "5000")

    assert_refused(result, 8, "deeper than 1024 directories", workspace)


def test_depth_limit_can_be_lowered(storage: Site, workspace: Workspace) -> None:
    url, digest = publish(storage, file("node_modules/a/node_modules/b/index.js"))

    result = fetch(workspace, url, digest, "--max-depth", "4")

    assert_refused(result, 8, "deeper than 4 directories", workspace)


def test_a_long_name_in_a_refusal_is_cut(storage: Site, workspace: Workspace) -> None:
    url, digest = publish(storage, file("/".join(["n" * 200] * 15) + "/../../x.js"))

    result = fetch(workspace, url, digest)

    assert_refused(result, 8, "'..' in path", workspace)
    assert "... (3025 characters)" in result.error_lines[0]
    assert len(result.error_lines[0]) < 250


def test_too_many_entries_are_refused(storage: Site, workspace: Workspace) -> None:
    url, digest = publish(storage, *(file(f"f{i}.js") for i in range(30)))

    result = fetch(workspace, url, digest, "--max-entries", "10")

    assert_refused(result, 8, "too many entries: more than 10", workspace)


def test_path_limit_can_be_lowered(storage: Site, workspace: Workspace) -> None:
    url, digest = publish(storage, file("node_modules/some-package/index.js"))

    result = run_fetch("--url", url, "--digest", digest, "--dest", str(workspace.dest),
                       env={"AETHER_FETCH_MAX_PATH": "20"})  # fmt: skip

    assert result.code == 8
    assert "path longer than 20 characters" in result.error_lines[0]


def test_body_that_is_not_gzip_is_refused(storage: Site, workspace: Workspace) -> None:
    page = b"<html>503 Service Unavailable</html>"
    result = fetch(workspace, storage.mount(body(page)), sha256(page))
    assert_refused(result, 7, "not a valid gzip-compressed tar archive", workspace)


def test_gzip_that_is_not_a_tar_is_refused(storage: Site, workspace: Workspace) -> None:
    data = gzip.compress(b"just some text, not a tar archive\n" * 100)
    result = fetch(workspace, storage.mount(body(data)), sha256(data))
    assert_refused(result, 7, "not a valid gzip-compressed tar archive", workspace)


def test_archive_corrupt_half_way_leaves_nothing(storage: Site, workspace: Workspace) -> None:
    # The digest covers the cut bytes, so only extraction can notice, after writing files.
    whole = tar_gz(*(file(f"f{i}.js", os.urandom(64 * 1024)) for i in range(8)))
    cut = whole[: len(whole) // 2]

    result = fetch(workspace, storage.mount(body(cut)), sha256(cut))

    assert_refused(result, 7, "not a valid gzip-compressed tar archive", workspace)


# ── a DEST that already exists ────────────────────────────────────────────────


def fill_previous_release(dest: Path) -> None:
    (dest / "lib").mkdir(parents=True)
    (dest / "server.js").write_text("// previous release\n")
    (dest / "lib" / "stale.js").write_text("// removed in the new release\n")


def test_existing_dest_is_replaced_on_success(storage: Site, workspace: Workspace) -> None:
    fill_previous_release(workspace.dest)
    url, digest = serve(storage, HONEST_ARCHIVE)

    result = fetch(workspace, url, digest)

    assert result.code == 0, result.stderr
    assert snapshot(workspace.dest) == expected_tree()
    assert sorted(p.name for p in workspace.dest.parent.iterdir()) == ["app", "neighbour.txt"]


def test_existing_dest_is_untouched_on_failure(storage: Site, workspace: Workspace) -> None:
    fill_previous_release(workspace.dest)
    url, digest = publish(storage, file("package.json"), file("../escaped.txt", b"x"))

    assert_refused(fetch(workspace, url, digest), 8, "'..' in path", workspace)


def test_dest_that_is_a_file_is_refused(storage: Site, workspace: Workspace) -> None:
    workspace.dest.write_text("not a directory\n")
    url, digest = serve(storage, HONEST_ARCHIVE)

    result = fetch(workspace, url, digest)

    assert_refused(result, 9, "exists and is not a directory", workspace)


def test_dest_whose_parent_is_missing_is_refused(storage: Site, workspace: Workspace) -> None:
    url, digest = serve(storage, HONEST_ARCHIVE)
    workspace.dest = workspace.root / "missing" / "app"

    assert_refused(fetch(workspace, url, digest), 9, "does not exist", workspace)


_IN_NAMESPACE = """
import json, os, subprocess, sys
dest = sys.argv[1]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "aether-test", dest], check=True)
with open(os.path.join(dest, "stale.js"), "w") as f:
    f.write("previous release")
done = subprocess.run([sys.executable, *sys.argv[2:]], capture_output=True, text=True)
print(json.dumps({"code": done.returncode, "stderr": done.stderr, "entries": sorted(os.listdir(dest)),
                  "mounted": os.path.ismount(dest)}))
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("mount") is None,
    reason="needs root and unshare to mount a tmpfs in a private mount namespace",
)
def test_dest_that_is_a_mount_point_gets_its_entries_swapped(
    storage: Site, workspace: Workspace
) -> None:
    # An emptyDir mounted straight at /app cannot be renamed; a private mount namespace
    # lets the test mount a tmpfs at DEST without touching the machine's mounts.
    workspace.dest.mkdir()
    url, digest = serve(storage, HONEST_ARCHIVE)
    args = [str(FETCH), "--url", url, "--digest", digest, "--dest", str(workspace.dest)]

    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", _IN_NAMESPACE,
         str(workspace.dest), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount here: {done.stderr.strip()[:200]}")
    outcome = json.loads(done.stdout)

    assert outcome["mounted"]
    assert outcome["code"] == 0, outcome["stderr"]
    top_level = sorted({name.split("/")[0] for name in expected_tree()})
    assert outcome["entries"] == top_level  # stale.js gone, no work directory left
