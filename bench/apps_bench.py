"""``aether apps create`` and ``aether apps destroy`` on the embedded stack: each one's wall time.

    .venv/bin/python bench/apps_bench.py [--reps 3]

Starts a private embedded stack (a temporary state directory on free loopback ports,
stopped at the end, also on failure) and, each repetition, times as a fresh `aether ...
--format json` process, from its start to its exit:

* `apps create NAME`: one registration;
* `apps destroy NAME --confirm NAME` of an app never deployed: the records alone;
* `apps destroy NAME --confirm NAME` of an app deployed once (`examples/hello-express`,
  its dependencies from `make fixtures`; the deploy is not timed): its pods, Service and
  Secrets, pull token, release and events, and its artifact's manifest and layers too.

Baseline, in the same run and interleaved: `aether whoami` (one API round trip: the floor of
any command). Each line prints the median and the slowest of its repetitions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.local.private import PrivateStack, private_stack  # noqa: E402
from tests.projects import PROJECTS  # noqa: E402

AETHER = str(Path(sys.executable).with_name("aether"))


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
    times: dict[str, list[float]] = {}

    def timed(stack: PrivateStack, label: str, *args: str) -> None:
        times.setdefault(label, []).append(run(stack, *args))

    with tempfile.TemporaryDirectory(prefix="aether-apps-bench-") as work:
        project = PROJECTS["example"].copy_to(Path(work))
        with private_stack(Path(work) / "stack") as stack:
            for index in range(reps):
                timed(stack, "baseline: whoami", "whoami")
                empty, deployed = f"bench-empty-{index}", f"bench-deployed-{index}"
                timed(stack, "apps create", "apps", "create", empty)
                timed(
                    stack,
                    "apps destroy (never deployed)",
                    "apps",
                    "destroy",
                    empty,
                    "--confirm",
                    empty,
                )
                run(stack, "apps", "create", deployed)
                run(stack, "deploy", "--path", str(project), "--no-sbom", "--app", deployed)
                timed(
                    stack,
                    "apps destroy (deployed once)",
                    "apps",
                    "destroy",
                    deployed,
                    "--confirm",
                    deployed,
                )
    print(
        f"apps create and destroy on the embedded stack, {reps} repetitions (median / slowest, s)"
    )
    for label, measured in times.items():
        print(f"  {label:<32} {statistics.median(measured):6.2f} / {max(measured):6.2f}")
    print(json.dumps({label: sorted(m) for label, m in times.items()}))


if __name__ == "__main__":
    main()
