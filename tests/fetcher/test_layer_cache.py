"""The node's layer cache: a dependencies layer fetched once per node, linked read-only into
every pod's tree after that, verified before each reuse and bounded by size."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from .archives import directory, file, symlink, tar_gz
from .sites import Site, body, sha256
from .test_layers import manifest, serve
from .workspace import FETCH, Result, run_fetch

ROOT = Path(__file__).resolve().parents[2]
RUNAS = ROOT / "infra" / "local" / "runas.py"
FETCHER_UID, APP_UID, APP_GID = 1001, 1000, 1000

DEPS = tar_gz(
    directory("node_modules/"),
    directory("node_modules/pad/"),
    file("node_modules/pad/index.js", b"module.exports = 1\n"),
    file("node_modules/pad/cli.js", b"#!/usr/bin/env node\n", mode=0o755),
    symlink("node_modules/.bin", "pad"),
)
OTHER_DEPS = tar_gz(directory("node_modules/"), file("node_modules/left.js", b"left\n"))
APP = tar_gz(
    file("package.json", b'{"name": "hello"}\n'),
    file("server.js", b"// hi\n"),
    file("lib/greeting.js", b"// hello\n"),  # a directory the app layer alone makes
)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Path]:
    """A node directory other users can reach, holding the cache and pods' trees."""
    root = Path(tempfile.mkdtemp(prefix="aether-node-"))
    root.chmod(0o755)
    (root / "layers").mkdir()
    (root / "pods").mkdir()
    yield root
    shutil.rmtree(root, ignore_errors=True)


def fetch_into(
    node: Path,
    pod: str,
    url: str,
    digest: str,
    *,
    max_bytes: int | None = None,
    cache: Path | None = None,
) -> Result:
    """Fetch into the node's pod ``pod``, with the node's layer cache (or ``cache``)."""
    args = ["--url", url, "--digest", digest, "--dest", str(node / "pods" / pod / "app")]
    (node / "pods" / pod).mkdir(exist_ok=True)
    args += ["--format", "manifest", "--cache", str(cache or node / "layers")]
    if max_bytes is not None:
        args += ["--cache-max-bytes", str(max_bytes)]
    return run_fetch(*args)


def published(storage: Site, deps: bytes = DEPS) -> tuple[str, str]:
    document = manifest(("deps", deps), ("app", APP))
    return serve(storage, document, {sha256(deps): deps, sha256(APP): APP})


def layer_requests(storage: Site, url: str, layer: bytes) -> int:
    return len(storage.seen(url.replace(url.split("/")[-2], sha256(layer))))


def contents(tree: Path) -> dict[str, str]:
    found = {}
    for path in sorted(tree.rglob("*")):
        rel = str(path.relative_to(tree))
        if path.is_symlink():
            found[rel] = f"-> {path.readlink()}"
        elif path.is_file():
            found[rel] = path.read_text()
    return found


def entries(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir())


def test_a_second_pod_links_the_cached_layer_without_downloading_it(
    storage: Site, node: Path
) -> None:
    url, digest = published(storage)

    first = fetch_into(node, "one", url, digest)
    second = fetch_into(node, "two", url, digest)

    assert first.code == 0 and second.code == 0, first.stderr + second.stderr
    assert layer_requests(storage, url, DEPS) == 1  # the second pod downloaded only the app
    assert layer_requests(storage, url, APP) == 2
    assert "deps layer ok" not in second.stderr and "is in the node's cache" in second.stderr
    one, two = node / "pods/one/app", node / "pods/two/app"
    assert contents(one) == contents(two)
    assert contents(two)["node_modules/pad/index.js"] == "module.exports = 1\n"
    assert contents(two)["node_modules/.bin"] == "-> pad"
    cached = node / "layers" / sha256(DEPS) / "tree/node_modules/pad/index.js"
    linked = two / "node_modules/pad/index.js"
    assert linked.stat().st_ino == cached.stat().st_ino  # a hard link: no copy, no extraction
    assert linked.stat().st_mode & 0o777 == 0o444  # read-only, whoever owns it
    assert (two / "node_modules/pad/cli.js").stat().st_mode & 0o777 == 0o555
    # The app layer is the pod's own, and its group (the app's) may write it.
    assert (two / "server.js").stat().st_nlink == 1
    assert (two / "server.js").stat().st_mode & 0o777 == 0o664
    assert entries(node / "layers") == [sha256(DEPS)]


def test_a_corrupt_cache_entry_is_detected_and_replaced(storage: Site, node: Path) -> None:
    url, digest = published(storage)
    assert fetch_into(node, "one", url, digest).code == 0
    cached = node / "layers" / sha256(DEPS) / "tree/node_modules/pad/index.js"
    cached.chmod(0o644)
    cached.write_text("module.exports = 'evil'\n")  # same mode after this: only size differs
    cached.chmod(0o444)

    result = fetch_into(node, "two", url, digest)

    assert result.code == 0, result.stderr
    assert "is corrupt" in result.stderr and "node_modules/pad/index.js" in result.stderr
    assert layer_requests(storage, url, DEPS) == 2
    assert contents(node / "pods/two/app")["node_modules/pad/index.js"] == "module.exports = 1\n"
    fresh = node / "layers" / sha256(DEPS) / "tree/node_modules/pad/index.js"
    assert fresh.read_text() == "module.exports = 1\n"
    assert entries(node / "layers") == [sha256(DEPS)]


def rewrite_stamp(entry: Path, old: str, new: str) -> None:
    stamp = entry / "stamp.jsonl"
    stamp.chmod(0o644)
    stamp.write_text(stamp.read_text().replace(old, new))


@pytest.mark.parametrize(
    "damage",
    [
        "no stamp",
        "missing file",
        "extra symlink target",
        "stamp path through ..",  # linking trusts the stamp's paths: they must stay inside
        "stamp and symlink out of the tree",
    ],
)
def test_a_half_written_or_damaged_entry_is_never_used(
    storage: Site, node: Path, damage: str
) -> None:
    url, digest = published(storage)
    assert fetch_into(node, "one", url, digest).code == 0
    entry = node / "layers" / sha256(DEPS)
    if damage == "no stamp":
        (entry / "stamp.jsonl").unlink()
    elif damage == "missing file":
        (entry / "tree/node_modules/pad/cli.js").unlink()
    elif damage == "stamp path through ..":
        rewrite_stamp(
            entry, '"node_modules/pad/cli.js"', '"node_modules/../node_modules/pad/cli.js"'
        )
    else:
        (entry / "tree/node_modules/.bin").unlink()
        (entry / "tree/node_modules/.bin").symlink_to("../../elsewhere")
        if damage == "stamp and symlink out of the tree":
            rewrite_stamp(entry, '"pad"', '"../../elsewhere"')
    # A crashed fetcher's staging directory, as it left it.
    staging = node / "layers" / f".staging-{sha256(DEPS)[:16]}-crashed"
    (staging / "tree").mkdir(parents=True)
    (staging / "tree/half.js").write_text("half")

    result = fetch_into(node, "two", url, digest)

    assert result.code == 0, result.stderr
    assert "is corrupt" in result.stderr
    assert contents(node / "pods/two/app") == contents(node / "pods/one/app")
    assert (entry / "stamp.jsonl").is_file()


def app_layer_path(url: str) -> str:
    """The path the app layer is served at, beside the manifest's ``url``."""
    return urllib.parse.urlsplit(url.replace(url.split("/")[-2], sha256(APP))).path


def test_a_layer_downloaded_beside_a_cached_one_is_still_checked(storage: Site, node: Path) -> None:
    url, digest = published(storage)
    assert fetch_into(node, "one", url, digest).code == 0
    storage.mount_at(app_layer_path(url), body(APP[:-1] + bytes([APP[-1] ^ 1])))  # same size

    result = fetch_into(node, "two", url, digest)

    assert result.code == 6, result.stderr
    assert "is in the node's cache" in result.stderr
    assert "digest mismatch in the app layer" in result.stderr
    assert list((node / "pods/two").iterdir()) == []  # no tree, no work directory


def test_sigterm_while_a_layer_downloads_beside_a_cached_one_cleans_up(
    storage: Site, node: Path
) -> None:
    url, digest = published(storage)
    assert fetch_into(node, "one", url, digest).code == 0
    half_sent, release = threading.Event(), threading.Event()

    def stalls(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(APP)))
        handler.end_headers()
        handler.wfile.write(APP[: len(APP) // 2])
        handler.wfile.flush()
        half_sent.set()
        release.wait(timeout=30)

    storage.mount_at(app_layer_path(url), stalls)
    (node / "pods/two").mkdir()
    args = ["--url", url, "--digest", digest, "--format", "manifest"]
    args += ["--dest", str(node / "pods/two/app"), "--cache", str(node / "layers")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AETHER_")}
    with subprocess.Popen(
        [sys.executable, str(FETCH), *args], env=env, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert half_sent.wait(timeout=30)
            process.send_signal(signal.SIGTERM)
            # The download thread notices once the stalled body ends; the fetch waits for it.
            threading.Timer(0.5, release.set).start()
            _, stderr = process.communicate(timeout=30)
        finally:
            release.set()

    assert process.returncode == 143, stderr
    assert "interrupted by SIGTERM" in stderr
    assert list((node / "pods/two").iterdir()) == []


def test_concurrent_fetchers_of_the_same_and_of_other_layers_are_safe(
    storage: Site, node: Path
) -> None:
    same = published(storage)
    other = published(storage, OTHER_DEPS)
    jobs = [("same", i, *same) for i in range(4)] + [("other", i, *other) for i in range(2)]
    processes = []
    for kind, index, url, digest in jobs:
        (node / "pods" / f"{kind}{index}").mkdir()
        args = [str(FETCH), "--url", url, "--digest", digest, "--format", "manifest"]
        args += ["--dest", str(node / "pods" / f"{kind}{index}" / "app")]
        args += ["--cache", str(node / "layers")]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AETHER_")}
        processes.append(
            subprocess.Popen([sys.executable, *args], env=env, stderr=subprocess.PIPE, text=True)
        )
    outcomes = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in processes]

    assert all(code == 0 for code, _ in outcomes), outcomes
    assert entries(node / "layers") == sorted([sha256(DEPS), sha256(OTHER_DEPS)])
    expected = contents(node / "pods/same0/app")
    assert expected["node_modules/pad/index.js"] == "module.exports = 1\n"
    for index in range(1, 4):
        assert contents(node / "pods" / f"same{index}" / "app") == expected
    for index in range(2):
        assert contents(node / "pods" / f"other{index}" / "app")["node_modules/left.js"] == "left\n"


def test_the_cache_evicts_the_least_recently_used_layer_past_its_bound(
    storage: Site, node: Path
) -> None:
    third_deps = tar_gz(directory("node_modules/"), file("node_modules/right.js", b"right"))
    first, second, third = (published(storage, d) for d in (DEPS, OTHER_DEPS, third_deps))
    bound = 46  # bytes of files: the first layer holds 39, the others 5 each
    for pod, artifact in (("a", first), ("b", second), ("a2", first)):
        assert fetch_into(node, pod, *artifact, max_bytes=bound).code == 0
    assert entries(node / "layers") == sorted([sha256(DEPS), sha256(OTHER_DEPS)])

    result = fetch_into(node, "c", *third, max_bytes=bound)

    assert result.code == 0, result.stderr
    assert f"evicted layer {sha256(OTHER_DEPS)[:12]}" in result.stderr  # used longest ago
    assert entries(node / "layers") == sorted([sha256(DEPS), sha256(third_deps)])
    # The evicted layer's pod still has every file: its links hold the data.
    assert contents(node / "pods/b/app")["node_modules/left.js"] == "left\n"


# Packages enough for the linking threads to share (scoped, nested, a bin link, files at
# the top): each subtree lands whole whichever thread makes it.
MANY_PACKAGES = tar_gz(
    directory("node_modules/"),
    file("node_modules/.package-lock.json", b"{}\n"),
    *(
        item
        for n in range(12)
        for item in (
            directory(f"node_modules/p{n}/"),
            directory(f"node_modules/p{n}/lib/"),
            file(f"node_modules/p{n}/lib/index.js", f"module.exports = {n}\n".encode()),
        )
    ),
    directory("node_modules/@scope/"),
    directory("node_modules/@scope/a/"),
    file("node_modules/@scope/a/index.js", b"// a\n"),
    directory("node_modules/@scope/a/node_modules/"),
    directory("node_modules/@scope/a/node_modules/p1/"),
    file("node_modules/@scope/a/node_modules/p1/index.js", b"// nested\n", mode=0o755),
    directory("node_modules/.bin/"),
    symlink("node_modules/.bin/p0", "../p0/lib/index.js"),
)


def test_a_layer_of_many_packages_is_linked_whole(storage: Site, node: Path) -> None:
    url, digest = published(storage, MANY_PACKAGES)

    first = fetch_into(node, "one", url, digest)
    second = fetch_into(node, "two", url, digest)

    assert first.code == 0 and second.code == 0, first.stderr + second.stderr
    assert "is in the node's cache" in second.stderr
    cached = contents(node / "layers" / sha256(MANY_PACKAGES) / "tree")
    linked = contents(node / "pods/two/app")
    assert {k: v for k, v in linked.items() if k.startswith("node_modules")} == cached
    assert linked["node_modules/p11/lib/index.js"] == "module.exports = 11\n"
    assert linked["node_modules/.bin/p0"] == "-> ../p0/lib/index.js"
    nested = node / "pods/two/app/node_modules/@scope/a/node_modules/p1/index.js"
    assert nested.stat().st_mode & 0o777 == 0o555 and nested.stat().st_nlink == 3


def test_a_cache_on_another_filesystem_is_copied_from(storage: Site, node: Path) -> None:
    shared_memory = Path("/dev/shm")
    if not shared_memory.is_dir() or shared_memory.stat().st_dev == node.stat().st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the temporary directory")
    url, digest = published(storage)
    cache = Path(tempfile.mkdtemp(prefix="aether-layers-", dir=shared_memory))
    try:
        for pod in ("one", "two"):
            result = fetch_into(node, pod, url, digest, cache=cache)
            assert result.code == 0, result.stderr
    finally:
        shutil.rmtree(cache)

    # link(2) answers EXDEV across filesystems: the second pod gets copies, read-only too.
    assert "cannot hard-link from the cache" in result.stderr
    assert "copied 5 entries from the node's cache" in result.stderr
    copied = node / "pods/two/app/node_modules/pad/cli.js"
    assert copied.stat().st_nlink == 1 and copied.stat().st_mode & 0o777 == 0o555
    assert contents(node / "pods/two/app") == contents(node / "pods/one/app")


def test_without_a_usable_cache_the_layers_are_extracted_as_before(
    storage: Site, node: Path
) -> None:
    url, digest = published(storage)
    (node / "layers").rmdir()
    (node / "layers").write_text("not a directory")

    result = fetch_into(node, "one", url, digest)

    assert result.code == 0, result.stderr
    assert "is not a directory this user may write; not used" in result.stderr
    assert contents(node / "pods/one/app")["node_modules/pad/index.js"] == "module.exports = 1\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the fetcher and app as users")
def test_the_app_cannot_write_chmod_or_replace_what_the_cache_holds(
    storage: Site, node: Path
) -> None:
    """As on a node: the fetcher runs as its own user, the app as another in the same group."""
    url, digest = published(storage)
    os.chown(node / "layers", FETCHER_UID, APP_GID)
    pod = node / "pods" / "one"
    pod.mkdir()
    os.chown(pod, APP_UID, APP_GID)
    pod.chmod(0o770)  # the pod's volume: the app's, and its group's (the fetcher's too)
    fetched = subprocess.run(
        [
            # The embedded stack's components run under umask 077 (its state is private).
            *("/bin/sh", "-c", 'umask 077 && exec "$@"', "sh"),
            *(sys.executable, str(RUNAS), str(FETCHER_UID), str(APP_GID), str(FETCH)),
            *("--url", url, "--digest", digest, "--dest", str(pod / "app")),
            *("--format", "manifest", "--cache", str(node / "layers")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert fetched.returncode == 0, fetched.stderr
    cached = node / "layers" / sha256(DEPS) / "tree/node_modules/pad/index.js"
    linked = pod / "app/node_modules/pad/index.js"
    assert linked.stat().st_ino == cached.stat().st_ino

    def as_app(script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["/bin/sh", "-c", script],
            user=APP_UID,
            group=APP_GID,
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            cwd=pod / "app",
        )

    reads = as_app("cat node_modules/pad/index.js node_modules/pad/cli.js lib/greeting.js")
    assert reads.returncode == 0, reads.stderr
    for attack in (
        "echo evil >> node_modules/pad/index.js",
        "chmod 666 node_modules/pad/index.js",
        "rm -f node_modules/pad/index.js",
        "mv node_modules/pad/index.js node_modules/pad/moved.js",
        f"echo evil >> {cached}",
        f"rm -rf {node / 'layers' / sha256(DEPS)}",
        f"touch {node / 'layers' / 'planted'}",
    ):
        assert as_app(attack).returncode != 0, attack
    assert cached.read_text() == "module.exports = 1\n"
    assert entries(node / "layers") == [sha256(DEPS)]
    # What is the app's own stays writable by it: the app layer and the tree's root.
    assert as_app("echo more >> server.js && touch new-file").returncode == 0
