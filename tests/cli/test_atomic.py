"""Files the CLI writes are written whole or not at all, by one helper."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from aether_cli.atomic import atomic_write, write_atomic

CLI = Path(__file__).resolve().parents[2] / "cli" / "aether_cli"


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write(b"half of the new")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_the_mode_is_exact_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        write_atomic(tmp_path / "shim", "#!/bin/sh\n", mode=0o755)
        write_atomic(tmp_path / "session.json", "{}\n", mode=0o600, durable=True)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "shim").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "session.json").stat().st_mode) == 0o600


def test_a_link_planted_at_the_old_temporary_name_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    (tmp_path / "out.sig.tmp").symlink_to(victim)
    write_atomic(tmp_path / "out.sig", "ab\n")
    assert victim.read_text() == "untouched\n"
    assert (tmp_path / "out.sig").read_text() == "ab\n"


def test_the_rename_and_the_retry_loop_are_each_written_once() -> None:
    renames: list[str] = []
    sleeps: list[str] = []
    for module in sorted(CLI.glob("*.py")):
        text = module.read_text()
        if re.search(r"\b(?:tmp|_tmp)\.replace\(|os\.replace\(|mkstemp\(", text):
            renames.append(module.name)
        if re.search(r"\bbackoff_delay\(", text):
            sleeps.append(module.name)
    assert renames == ["atomic.py"]
    assert sleeps == ["retry.py"]
