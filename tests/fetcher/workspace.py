"""Running the real fetch.py, and checking what it left on disk around DEST."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

FETCH = Path(__file__).resolve().parents[2] / "infra" / "images" / "fetcher" / "fetch.py"


@dataclass(frozen=True)
class Result:
    code: int
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("fetch: error:")]


def run_fetch(*args: str, env: dict[str, str] | None = None) -> Result:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AETHER_")}
    environ.update(env or {})
    done = subprocess.run(
        [sys.executable, str(FETCH), *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )
    return Result(done.returncode, done.stderr)


# Runs the fetcher as its child and reports the child's peak RSS (KiB on Linux) on its last
# line: this process's own children (servers, earlier fetches) do not count.
_MEASURED = """\
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def run_fetch_measured(*args: str) -> tuple[Result, int]:
    """``run_fetch`` and the fetcher's peak resident memory in bytes."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AETHER_")}
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED, sys.executable, str(FETCH), *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        check=False,
    )
    *lines, peak = done.stderr.splitlines()
    return Result(done.returncode, "\n".join(lines) + "\n"), int(peak) * 1024


def snapshot(root: Path) -> dict[str, str]:
    """Every path under root with what it is: file content hash, link target, or dir."""
    tree: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                tree[rel] = f"symlink -> {path.readlink()}"
            elif path.is_dir():
                tree[rel] = "dir"
            else:
                tree[rel] = (
                    f"file {oct(path.stat().st_mode & 0o7777)} {hashlib.sha256(path.read_bytes()).hexdigest()}"
                )
    return tree


@dataclass
class Workspace:
    """tmp_path holds a pod directory with a neighbour file; DEST is pod/app."""

    root: Path
    dest: Path

    def __post_init__(self) -> None:
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        (self.dest.parent / "neighbour.txt").write_text("not the fetcher's\n")
        self.before: dict[str, str] = {}

    def freeze(self) -> None:
        """Remember everything, DEST included; call just before running the fetcher."""
        self.before = snapshot(self.root)

    def assert_untouched(self) -> None:
        assert snapshot(self.root) == self.before


def assert_refused(result: Result, code: int, phrase: str, workspace: Workspace) -> None:
    """Non-zero with the expected code, one clear last line, and nothing left behind."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.code == code, result.stderr
    assert len(result.error_lines) == 1, result.stderr
    assert result.stderr.splitlines()[-1] == result.error_lines[0]
    assert phrase in result.error_lines[0], result.stderr
    workspace.assert_untouched()
