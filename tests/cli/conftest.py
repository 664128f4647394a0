"""Fixtures for the packing engine's tests: small project trees made on the spot."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.projects import PROJECTS

REPO = Path(__file__).resolve().parents[2]
HELLO_EXPRESS = REPO / "examples" / "hello-express"

# (path, content or None for a directory, executable). Chosen to exercise the
# archive rules: byte-wise sort ("a-c" < "a/b"), upper case, UTF-8 names, a path
# longer than ustar's 100 bytes, an executable, an empty directory, a file big
# enough to be streamed in chunks and to span several gzip blocks.
_LONG = "node_modules/x/lib/" + "deeply-nested-directory/" * 4 + "index.js"


def _big_content() -> bytes:
    rng = random.Random(20)  # noqa: S311 - reproducible test data, not secrets
    words = [rng.randbytes(rng.randint(2, 9)).hex() for _ in range(400)]
    text = " ".join(rng.choice(words) for _ in range(260_000)).encode()
    return text[:1_500_000] + rng.randbytes(200_000)


SAMPLE_FILES: list[tuple[str, bytes | None, bool]] = [
    ("package.json", b'{"name": "sample", "scripts": {"start": "node server.js"}}\n', False),
    ("server.js", b"require('http').createServer().listen(process.env.PORT)\n", False),
    ("a-c.txt", b"dash\n", False),
    ("a", None, False),
    ("a/b.txt", b"slash\n", False),
    ("Zed.txt", b"upper case sorts first\n", False),
    ("docs", None, False),
    ("docs/\u00fcn\u00efcode.md", "# \u00fcn\u00efcode\n".encode(), False),
    ("empty", None, False),
    ("lib", None, False),
    ("lib/data.bin", _big_content(), False),
    ("lib/util.js", b"module.exports = () => 42;\n", False),
    ("node_modules", None, False),
    ("node_modules/x", None, False),
    (
        "node_modules/x/package.json",
        b'{"name": "x", "version": "1.0.0", "bin": "bin/x.js"}\n',
        False,
    ),
    ("node_modules/x/bin", None, False),
    ("node_modules/x/bin/x.js", b"#!/usr/bin/env node\nconsole.log('x')\n", True),
    ("node_modules/@scope", None, False),
    ("node_modules/@scope/pkg", None, False),
    ("node_modules/@scope/pkg/index.js", b"module.exports = 'scoped';\n", False),
    (_LONG, b"module.exports = 'deep';\n", False),
    ("node_modules/.bin", None, False),
]
SAMPLE_SYMLINKS: list[tuple[str, str]] = [
    ("node_modules/.bin/x", "../x/bin/x.js"),
    ("lib/current", "util.js"),
]


def build_tree(
    root: Path,
    *,
    reverse: bool = False,
    mtime: float | None = None,
    umask: int = 0o022,
) -> Path:
    """Create the sample tree under ``root`` in the given order, umask and mtime."""
    root.mkdir(parents=True, exist_ok=True)
    previous = os.umask(umask)
    try:
        items = list(reversed(SAMPLE_FILES)) if reverse else SAMPLE_FILES
        for rel, content, executable in items:
            path = root / rel
            if content is None:
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            if executable:
                path.chmod(0o777 & ~umask)
        links = list(reversed(SAMPLE_SYMLINKS)) if reverse else SAMPLE_SYMLINKS
        for rel, target in links:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).symlink_to(target)
    finally:
        os.umask(previous)
    if mtime is not None:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                os.utime(Path(dirpath) / name, (mtime, mtime), follow_symlinks=False)
    return root


@pytest.fixture
def sample_tree_factory() -> Callable[..., Path]:
    """``build(root, reverse=False, mtime=None, umask=0o022)`` → the sample project."""
    return build_tree


@pytest.fixture
def sample_tree(tmp_path: Path) -> Path:
    return build_tree(tmp_path / "app")


@pytest.fixture
def hello_express_copy(tmp_path: Path) -> Path:
    """examples/hello-express copied to tmp, without any node_modules or build output."""
    target = tmp_path / "hello-express"
    shutil.copytree(HELLO_EXPRESS, target, ignore=shutil.ignore_patterns("node_modules", ".aether"))
    return target


@pytest.fixture
def installed_example(tmp_path: Path) -> Path:
    """examples/hello-express with its staging install (``make fixtures``): nothing to install."""
    return PROJECTS["example"].copy_to(tmp_path)


@pytest.fixture
def path_without_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """PATH reduced to an empty directory: no npm (nor anything else) to be found."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    yield empty
