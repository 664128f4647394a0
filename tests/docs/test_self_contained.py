"""The repository explains itself: nothing in it points at documents that are not in it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Design documents, issue numbers, "the spec" and machine paths of the machines it was
# written on: a reader of the repository cannot open any of them.
OUTSIDE = re.compile(r"\bDESIGN(\.md)?\b|\bissue [0-9]|\bthe spec('s)?\b|\bspec('s)? §|/work/")


def test_no_file_cites_a_document_outside_the_repository() -> None:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    cited = [
        f"{name}:{number}: {line.strip()}"
        for name in listed
        if name != "tests/docs/test_self_contained.py"
        and (ROOT / name).is_file()
        and (ROOT / name).stat().st_size < 1_000_000
        for number, line in enumerate(
            (ROOT / name).read_text(encoding="utf-8", errors="ignore").splitlines(), 1
        )
        if OUTSIDE.search(line)
    ]
    assert cited == []
