"""Deploy times of every kind of project, beside a from-scratch build of the same project.

    .venv/bin/python bench/kinds_bench.py [--reps 1] [--kinds typescript,pnpm,...]

Starts a private embedded stack and, for each fixture project under
tests/fixtures/projects (and the example), deploys with the real CLI until the app's
URL answers:

* cold: a fresh copy of the project (no `.aether/`: mirror, install, build, pack,
  upload, rollout; the package managers' own caches are warm, as on any machine that
  installed once);
* unchanged: the same deploy again (nothing installed, built or uploaded);
* source-only: one source file edited (for a project with a build, one the build reads):
  no install, the build runs, a new artifact is uploaded and rolled out.

Baseline, in the same run and on the same stack: `aether deploy --clean`, which throws
the staging copy away and installs, builds and packs from scratch, as a server-side
build does on every deploy (copy, frozen install, build, prune, pack, store, roll out).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.local.private import PrivateStack, private_stack
from tests.projects import PROJECTS

AETHER = str(Path(sys.executable).with_name("aether"))
KINDS = [kind for kind in PROJECTS if kind != "fixed-port"]
# The file a source-only change edits, per kind (relative to the deployed package).
SOURCES = {
    "example": "server.js",
    "typescript": "src/greeting.ts",
    "esbuild": "src/server.js",
    "npm-workspaces": "server.js",
    "pnpm-workspaces": "server.js",
}


def deploy(stack: PrivateStack, app_dir: Path, app: str, *extra: str) -> float:
    """Seconds from starting `aether deploy` to the first successful GET of its URL."""
    env = stack.cli_env()
    started = time.perf_counter()
    done = subprocess.run(
        [AETHER, "deploy", "--path", str(app_dir), "--app", app, "--format", "json", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"deploy of {app_dir} failed:\n{done.stderr}")
    url = json.loads(done.stdout)["url"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=5).ok:
                return time.perf_counter() - started
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} never answered")


def edit(app_dir: Path, kind: str, rep: int) -> None:
    source = app_dir / SOURCES.get(kind, "server.js")
    text = source.read_text()
    if source.suffix == ".ts":
        text = text.replace("compiled by tsc", f"compiled by tsc, change {rep}")
    source.write_text(text + f"\n// kinds bench change {rep}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    if not set(kinds) <= set(KINDS) or args.reps < 1:
        parser.error(f"--kinds takes {', '.join(KINDS)}; --reps at least 1")
    times: dict[str, dict[str, list[float]]] = {}
    work = Path(tempfile.mkdtemp(prefix="aether-kinds-bench-"))
    began = time.perf_counter()
    try:
        with private_stack(work / "stack") as stack:
            for kind in kinds:
                row = times[kind] = {"cold": [], "unchanged": [], "source-only": [], "clean": []}
                for rep in range(args.reps):
                    app_dir = PROJECTS[kind].copy_to(work / f"{kind}-{rep}", warm=False)
                    app = f"bench-{kind}-{rep}"
                    row["cold"].append(deploy(stack, app_dir, app))
                    row["unchanged"].append(deploy(stack, app_dir, app))
                    edit(app_dir, kind, rep)
                    row["source-only"].append(deploy(stack, app_dir, app))
                    edit(app_dir, kind, rep + 1000)
                    row["clean"].append(deploy(stack, app_dir, app, "--clean"))
                print(
                    kind, {k: [round(v, 2) for v in vs] for k, vs in row.items()}, file=sys.stderr
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median = statistics.median
    print(
        f"deploy until the app answers, median of {args.reps}; {os.cpu_count()} cores, load "
        f"avg {os.getloadavg()[0]:.2f}"
    )
    print(
        "baseline: `aether deploy --clean` after a source change (install, build and pack "
        "from scratch, as a server-side build does every time)"
    )
    print(
        f"{'kind':16} {'cold':>7} {'unchanged':>10} {'source-only':>12} {'baseline':>9} "
        f"{'source-only vs baseline':>24}"
    )
    for kind, row in times.items():
        ratio = 100 * (1 - median(row["source-only"]) / median(row["clean"]))
        print(
            f"{kind:16} {median(row['cold']):7.2f} {median(row['unchanged']):10.2f} "
            f"{median(row['source-only']):12.2f} {median(row['clean']):9.2f} "
            f"{ratio:21.0f} % less"
        )
    print(f"whole run: {time.perf_counter() - began:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
