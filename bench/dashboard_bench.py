"""The dashboard's first load: its bytes and its time to interactive on the embedded stack.

    .venv/bin/python bench/dashboard_bench.py [--rounds 5]

Starts a private embedded stack (free loopback ports, a temporary state
directory, stopped again at the end), deploys `examples/hello-express` with the
real CLI, then opens the dashboard in Debian's headless chromium through
playwright-core (`tests/dashboard/browser/run.mjs`, scenario `first_visits`):
each round a fresh browser profile (nothing cached) whose tab already holds the
admin token, as after signing in.

* interactive: navigation start until the apps page lists the app (the page's
  own `aether:interactive` mark); then the same page reloaded, its files
  revalidated (304s, no bodies);
* bytes: the dashboard's files as downloaded (no compression on the wire),
  and the API's JSON.

Baseline, measured in the same run, interleaved: the API calls the page makes
for the same data (`GET /whoami`, then `GET /apps`) from Python with a fresh
connection each, as a first visit opens them: what any client pays for what
the page shows. Needs `chromium` and `npm ci --prefix tests/dashboard/browser`.
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

from infra.local.private import private_stack

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "hello-express"
RUNNER = ROOT / "tests" / "dashboard" / "browser" / "run.mjs"
CHROMIUM = Path("/usr/bin/chromium")
AETHER = str(Path(sys.executable).with_name("aether"))


def api_round_trips(api_url: str, token: str) -> float:
    """Milliseconds for the page's two calls, one after the other, each on a new connection."""
    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    for path in ("/whoami", "/apps"):
        with requests.Session() as fresh:
            fresh.get(f"{api_url}{path}", headers=headers, timeout=30).raise_for_status()
    return (time.perf_counter() - started) * 1000


def browser_visit(context: dict[str, object]) -> dict[str, float]:
    done = subprocess.run(
        ["node", str(RUNNER), "first_visits"],
        env={**os.environ, "AETHER_DASHBOARD_CONTEXT": json.dumps(context)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the browser run failed:\n{done.stderr}")
    visit: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])["visits"][0]
    return visit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    if not CHROMIUM.exists() or not (RUNNER.parent / "node_modules" / "playwright-core").is_dir():
        print(
            "dashboard bench skipped: needs chromium and `npm ci --prefix tests/dashboard/browser`"
        )
        return
    with (
        tempfile.TemporaryDirectory(prefix="aether-dashboard-bench-") as work,
        private_stack(Path(work) / "stack") as stack,
    ):
        project = Path(work) / "hello-express"
        shutil.copytree(EXAMPLE, project, symlinks=True, ignore=shutil.ignore_patterns(".aether"))
        env = {**stack.env, "XDG_CONFIG_HOME": f"{work}/cli", "XDG_CACHE_HOME": f"{work}/cache"}
        subprocess.run(
            [AETHER, "deploy", "--path", str(project), "--no-sbom", "--format", "json"],
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        token = stack.env["AETHER_TOKEN"]
        context = {
            "dashboard": f"{stack.api_url}/dashboard",
            "chromium": str(CHROMIUM),
            "output": f"{work}/output",
            "admin_token": token,
            "demo_app": "hello-express",
        }
        visits, baseline = [], []
        for _ in range(rounds):
            visits.append(browser_visit(context))
            baseline.append(api_round_trips(stack.api_url, token))

    def median(key: str) -> float:
        return statistics.median(float(visit[key]) for visit in visits)

    print(f"dashboard first load, {rounds} rounds (medians), embedded stack:")
    print(f"  time to interactive, nothing cached   {median('interactive_ms'):8.0f} ms")
    print(f"  time to interactive, revisit          {median('revisit_interactive_ms'):8.0f} ms")
    print(f"  baseline: GET /whoami + GET /apps     {statistics.median(baseline):8.0f} ms")
    print(f"  dashboard files, first load           {median('dashboard_bytes'):8.0f} bytes")
    print(f"  dashboard files, revisit              {median('revisit_dashboard_bytes'):8.0f} bytes")
    print(f"  API JSON                              {median('api_bytes'):8.0f} bytes")
    print(f"  requests                              {median('requests'):8.0f}")


if __name__ == "__main__":
    main()
