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
from collections.abc import Callable

from stack_timings import Timings, example_on_a_stack

APP = "bench-releases"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    reps = parser.parse_args().reps
    with example_on_a_stack("aether-releases-bench-") as (stack, project):
        timings = Timings(stack)
        timed = timings.timed
        app = ["--app", APP]
        deploy = ["deploy", "--path", str(project), "--no-sbom", *app]
        timings.run(*deploy)  # untimed: the app's first release
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
    timings.report(f"release commands on the embedded stack, {reps} repetitions")


if __name__ == "__main__":
    main()
