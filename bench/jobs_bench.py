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
from collections.abc import Callable

from stack_timings import Timings, example_on_a_stack

APP = "bench-jobs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    reps = parser.parse_args().reps
    with example_on_a_stack("aether-jobs-bench-") as (stack, project):
        # `aether run` prints the command's own output, not a JSON document.
        timings = Timings(stack, json_output=False)
        timed = timings.timed
        app = ["--app", APP]
        deploy = ["deploy", "--path", str(project), "--no-sbom", *app]
        timings.run(*deploy)  # untimed: the app's first release
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
            lambda i: timings.run(*deploy, "--env", f"R=c{i}", "--release-command", ""),
        ]
        for index in range(reps):
            for step in steps:
                step(index)
    timings.report(f"jobs on the embedded stack, {reps} repetitions")


if __name__ == "__main__":
    main()
