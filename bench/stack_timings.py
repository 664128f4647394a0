"""Wall times of `aether` commands on a private embedded stack, for the command benches.

Each command is a fresh `aether ...` process, timed from its start to its exit; a failure
ends the bench with its message. Labels keep the order they were first timed in, so a
bench that interleaves its commands and their baselines prints them in that order.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.local.private import PrivateStack, private_stack  # noqa: E402
from tests.projects import PROJECTS  # noqa: E402

AETHER = str(Path(sys.executable).with_name("aether"))


@contextmanager
def example_on_a_stack(prefix: str) -> Iterator[tuple[PrivateStack, Path]]:
    """A copy of `examples/hello-express` (installed by `make fixtures`) and a private
    stack in a temporary directory, stopped at the end, also on failure."""
    if not PROJECTS["example"].warm:
        raise SystemExit("run `make fixtures` first")
    with tempfile.TemporaryDirectory(prefix=prefix) as work:
        project = PROJECTS["example"].copy_to(Path(work))
        with private_stack(Path(work) / "stack") as stack:
            yield stack, project


class Timings:
    def __init__(self, stack: PrivateStack, *, json_output: bool = True) -> None:
        self.stack = stack
        self.json_output = json_output  # add `--format json` to every command
        self.times: dict[str, list[float]] = {}

    def run(self, *args: str) -> float:
        """Run one command untimed by any label; its wall time."""
        started = time.monotonic()
        done = subprocess.run(
            [AETHER, *args, *(["--format", "json"] if self.json_output else [])],
            env=self.stack.cli_env(),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        elapsed = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(f"aether {' '.join(args)} failed: {done.stderr.strip()}")
        return elapsed

    def timed(self, label: str, *args: str) -> None:
        self.times.setdefault(label, []).append(self.run(*args))

    def report(self, title: str) -> None:
        """Each label's median and slowest, then the whole record as one JSON line."""
        print(f"{title} (median / slowest, s)")
        width = max(map(len, self.times), default=0) + 2
        for label, measured in self.times.items():
            print(f"  {label:<{width}} {statistics.median(measured):6.2f} / {max(measured):6.2f}")
        print(json.dumps({label: sorted(measured) for label, measured in self.times.items()}))
