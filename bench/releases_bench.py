"""The release commands on the embedded stack: each one's wall time, beside a redeploy.

    .venv/bin/python bench/releases_bench.py [--reps 3]

Starts a private embedded stack (a temporary state directory on free loopback ports,
stopped at the end, also on failure), deploys `examples/hello-express` once (untimed; its
dependencies come from `make fixtures`), then times each command as a fresh `aether ...
--format json` process, from its start to its exit (a change returns once its release has
rolled out, as the CLI does by default):

* `config` (names), `config get NAME`, `releases`, `open`: one read each;
* `config set NAME=VALUE`, `config unset NAME`: a release of the same artifact;
* `scale 2`, `scale 1`, `restart`, `rollback vN`: a release (or, for restart, new pods).

Baseline, in the same run and interleaved: `aether deploy` of the unchanged project (the
one way to change config before releases: it packs, finds the artifact uploaded and rolls
out again with new env) and `aether whoami` (one API round trip: the floor of any command).
Each line prints the median and the slowest of its repetitions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.local.private import PrivateStack, private_stack  # noqa: E402
from tests.projects import PROJECTS  # noqa: E402

AETHER = str(Path(sys.executable).with_name("aether"))
APP = "bench-releases"


def run(stack: PrivateStack, *args: str) -> float:
    started = time.monotonic()
    done = subprocess.run(
        [AETHER, *args, "--format", "json"],
        env=stack.cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"aether {' '.join(args)} failed: {done.stderr.strip()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    reps = parser.parse_args().reps
    if not PROJECTS["example"].warm:
        raise SystemExit("run `make fixtures` first")
    with tempfile.TemporaryDirectory(prefix="aether-releases-bench-") as work:
        project = PROJECTS["example"].copy_to(Path(work))
        with private_stack(Path(work) / "stack") as stack:
            app = ["--app", APP]
            deploy = ["deploy", "--path", str(project), "--no-sbom", *app]
            run(stack, *deploy)  # untimed: the app's first release
            times: dict[str, list[float]] = {}

            def timed(label: str, *args: str) -> None:
                times.setdefault(label, []).append(run(stack, *args))

            steps: list[Callable[[int], None]] = [
                lambda i: timed("baseline: whoami", "whoami"),
                lambda i: timed("baseline: deploy (unchanged, --env)", *deploy, "--env", f"R={i}"),
                lambda i: timed("config", "config", *app),
                lambda i: timed("config set", "config", "set", f"GREETING=v{i}", *app),
                lambda i: timed("config get", "config", "get", "GREETING", *app),
                lambda i: timed("config unset", "config", "unset", "GREETING", *app),
                lambda i: timed("releases", "releases", *app),
                lambda i: timed("open", "open", "--no-browser", *app),
                lambda i: timed("scale 2", "scale", "2", *app),
                lambda i: timed("scale 1", "scale", "1", *app),
                lambda i: timed("restart", "restart", *app),
                lambda i: timed("rollback v1", "rollback", "v1", *app),
            ]
            for index in range(reps):
                for step in steps:
                    step(index)
    print(f"release commands on the embedded stack, {reps} repetitions (median / slowest, s)")
    for label, measured in times.items():
        print(f"  {label:<38} {statistics.median(measured):6.2f} / {max(measured):6.2f}")
    print(json.dumps({label: sorted(m) for label, m in times.items()}))


if __name__ == "__main__":
    main()
