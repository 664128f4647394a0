"""Jobs on the embedded stack: `aether run` of a trivial command, and a release command's
cost to a deploy, beside `aether restart` and an unchanged redeploy.

    .venv/bin/python bench/jobs_bench.py [--reps 5]

Starts a private embedded stack (a temporary state directory on free loopback ports,
stopped at the end, also on failure), deploys `examples/hello-express` once (untimed; its
dependencies come from `make fixtures`), then times each command as a fresh `aether ...`
process, from its start to its exit, interleaved:

* `aether run -- node -e 0`: a Job created, its pod scheduled, the artifact fetched and
  extracted, Node started and exited, the output read and the exit code returned;
* `aether run -- true`: the same without Node's start-up;
* `aether deploy --release-command true` of the unchanged project (a new release each time,
  its command's Job first, then the rollout).

Baseline, in the same run: `aether restart` (new pods for the same release: the fetcher and
a rollout, the nearest thing to a run) and `aether deploy` of the unchanged project with a
new config value and no release command (the same release without its Job). Each line
prints the median and the slowest of its repetitions.
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
APP = "bench-jobs"


def run(stack: PrivateStack, *args: str) -> float:
    started = time.monotonic()
    done = subprocess.run(
        [AETHER, *args],
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
    parser.add_argument("--reps", type=int, default=5)
    reps = parser.parse_args().reps
    if not PROJECTS["example"].warm:
        raise SystemExit("run `make fixtures` first")
    with tempfile.TemporaryDirectory(prefix="aether-jobs-bench-") as work:
        project = PROJECTS["example"].copy_to(Path(work))
        with private_stack(Path(work) / "stack") as stack:
            app = ["--app", APP]
            deploy = ["deploy", "--path", str(project), "--no-sbom", *app]
            run(stack, *deploy)  # untimed: the app's first release
            times: dict[str, list[float]] = {}

            def timed(label: str, *args: str) -> None:
                times.setdefault(label, []).append(run(stack, *args))

            steps: list[Callable[[int], None]] = [
                lambda i: timed("baseline: restart", "restart", *app),
                lambda i: timed("run -- node -e 0", "run", *app, "--", "node", "-e", "0"),
                lambda i: timed("run -- true", "run", *app, "--", "true"),
                lambda i: timed("baseline: deploy (unchanged, --env)", *deploy, "--env", f"R=a{i}"),
                lambda i: timed(
                    "deploy --release-command true",
                    *deploy,
                    "--env",
                    f"R=b{i}",
                    "--release-command",
                    "true",
                ),
                # Back to no release command, untimed, for the next baseline deploy.
                lambda i: run(stack, *deploy, "--env", f"R=c{i}", "--release-command", ""),
            ]
            for index in range(reps):
                for step in steps:
                    step(index)
    print(f"jobs on the embedded stack, {reps} repetitions (median / slowest, s)")
    for label, measured in times.items():
        print(f"  {label:<38} {statistics.median(measured):6.2f} / {max(measured):6.2f}")
    print(json.dumps({label: sorted(m) for label, m in times.items()}))


if __name__ == "__main__":
    main()
