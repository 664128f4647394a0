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

from stack_timings import Timings, example_on_a_stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    reps = parser.parse_args().reps
    with example_on_a_stack("aether-apps-bench-") as (stack, project):
        timings = Timings(stack)
        for index in range(reps):
            timings.timed("baseline: whoami", "whoami")
            empty, deployed = f"bench-empty-{index}", f"bench-deployed-{index}"
            timings.timed("apps create", "apps", "create", empty)
            destroy_empty = ("apps", "destroy", empty, "--confirm", empty)
            timings.timed("apps destroy (never deployed)", *destroy_empty)
            timings.run("apps", "create", deployed)
            timings.run("deploy", "--path", str(project), "--no-sbom", "--app", deployed)
            destroy_deployed = ("apps", "destroy", deployed, "--confirm", deployed)
            timings.timed("apps destroy (deployed once)", *destroy_deployed)
    timings.report(f"apps create and destroy on the embedded stack, {reps} repetitions")


if __name__ == "__main__":
    main()
