"""Deploy latency: `aether deploy` until the app answers, beside a server-side build.

    .venv/bin/python bench/deploy_bench.py [--reps 5] [--apps small,typescript,large]
        [--scenarios cold,unchanged,source-only,dependency-change]

Starts a private embedded stack (`python -m infra.local up` in a temporary state
directory on free loopback ports; stopped again at the end, also on failure) and
deploys these apps with the real CLI:

* small: `examples/hello-express`, copied to bench/.work/deploy/small;
* typescript: `tests/fixtures/projects/ts-express` (express, built by `tsc`), copied
  to bench/.work/deploy/typescript; its source-only change edits `src/greeting.ts`,
  so every such deploy runs the build;
* large: the pack bench's fixture in place (~200 MB node_modules, built with npm by
  `pack_bench.setup()` on the first run; its entry file is restored afterwards).

An untimed first deploy installs each app's dependencies in its staging directory, as
they would be on a developer's machine after the first deploy: every timed deploy must
log that it installed nothing, or the bench fails.

Ours, per app, each repetition interleaved with one baseline build so both see
the same machine load; before each timed step the disk is settled (`sync`,
untimed), so neither is billed for the writeback of the one before it (a
baseline build writes and then deletes ~200 MB of node_modules); each time is a
fresh `aether deploy --app NAME --path DIR
--format json` process (default SBOM on) until the first successful GET of the
URL it reports:

* cold: a fresh app name, so the whole artifact is uploaded;
* unchanged: redeploy of the bench app with nothing changed (no upload);
* source-only: a comment line appended to the entry file, then a deploy (new
  digest, only the app layer uploaded, rollout);
* dependency-change: one small package added to (or, the next repetition, removed
  from) package.json and the lockfile with `npm install --package-lock-only` (untimed),
  then a deploy: the CLI installs again, packs and uploads the dependencies layer (and
  the app layer, which holds package.json), and rolls out.

Each deploy's bytes uploaded (layers and manifest) are printed beside the artifact's
total size; the last line is the summary as one JSON object.

Each timed deploy's new pod's fetch time (its init container's last log line) is
printed by where its dependencies layer came from: "downloaded" (downloaded, verified,
extracted into the node's layer cache, linked) or "node cache" (verified against its
stamp and linked; nothing downloaded or extracted). The untimed first deploy's pod is
the first of the app on the node: its fetch is the cold one. A cold deploy is a new app
(every layer uploaded), on a node that already holds the bench app's dependencies layer.

"rollout" is the part of our time from the end of the upload step (the CLI's last
log record before it reports the new deployment) to the first successful GET.

Baseline, what the incumbent pipeline does on every deploy, a server-side build:
copy the source without node_modules to a fresh build directory, `npm ci
--omit=dev` there (for an app with a build script: `npm ci && npm run build && npm
prune --omit=dev`; npm's cache warm: the fairest baseline), `tar --sort=name ...
| gzip -6 -n` to a file, store it with one boto3 PUT to the stack's SeaweedFS (a
bucket of its own, without event notifications). Its time per repetition is that
build plus the median of our measured rollout for the same app: for cold, our
cold rollouts (a new app); for unchanged and source-only, our source-only
rollouts (the incumbent's build is a new artifact every time, so it always
rolls out). The baseline's p95 is the p95 of its builds plus that median.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pack_bench  # the large app's fixture and p95 (bench/ is on sys.path as the script's dir)

from infra.local.private import PrivateStack, private_stack
from tests.projects import PROJECTS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

WORK = HERE / ".work" / "deploy"
AETHER = str(Path(sys.executable).with_name("aether"))
SCENARIOS = ("cold", "unchanged", "source-only", "dependency-change")
# What the dependency change adds (another version each time, so that every addition is a
# new dependencies layer) and removes again.
EXTRA_PACKAGES = ("is-number@7.0.0", "is-number@6.0.0", "is-number@5.0.0", "is-number@4.0.0")
APPS = ("small", "typescript", "large")
INSTALL_SKIPPED = "dependencies unchanged since the last install: nothing to install"
BASELINE_BUCKET = "aether-bench-baseline"
PACK = "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - . | gzip -6 -n > {out}"
ONLINE_TIMEOUT = 60.0
NAMESPACE = "aether-apps"


@contextmanager
def embedded_stack() -> Iterator[PrivateStack]:
    state = Path(tempfile.mkdtemp(prefix="aether-deploy-bench-"))
    try:
        with private_stack(state) as stack:
            yield stack
    finally:
        shutil.rmtree(state, ignore_errors=True)


def prepare(app: str) -> Path:
    """The app's project: the pack bench's fixture in place, or a copy of a fixture."""
    if app == "large":
        pack_bench.setup()
        return pack_bench.APP
    source = {"small": PROJECTS["example"], "typescript": PROJECTS["typescript"]}[app]
    shutil.rmtree(WORK / source.root.name, ignore_errors=True)
    return source.copy_to(WORK, warm=False)


def entry_file(project: Path) -> Path:
    """The file a source-only change edits: one the build reads, when there is a build."""
    if (project / "src" / "greeting.ts").is_file():
        return project / "src" / "greeting.ts"
    package = json.loads((project / "package.json").read_text())
    return project / package.get("main", "server.js")


def tree_size(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir())


@dataclass(frozen=True)
class Deploy:
    seconds: float
    rollout: float
    uploaded: bool
    digest: str
    size_bytes: int
    uploaded_bytes: int = 0
    uploaded_layers: tuple[str, ...] = ()
    fetch: Fetch | None = None


@dataclass(frozen=True)
class Fetch:
    """What the new pod's fetcher logged: its whole time, and where the deps layer came from."""

    seconds: float
    deps: str  # "node cache", "downloaded" or "none"


def pod_fetch(stack: PrivateStack, app: str, digest: str) -> Fetch | None:
    """The fetch of a ready pod of ``app`` running ``digest``, from its init container's log."""
    from kubernetes.client import CoreV1Api

    from chalicelib.kube import api_client

    api = CoreV1Api(api_client(stack.env["KUBECONFIG"]))
    pods = api.list_namespaced_pod(NAMESPACE, label_selector=f"app_name={app}").items
    for pod in pods:
        if (pod.metadata.annotations or {}).get("aether.dev/artifact-digest") != digest:
            continue
        log = str(api.read_namespaced_pod_log(pod.metadata.name, NAMESPACE, container="fetch"))
        ready = re.search(r"ready: .* in ([0-9.]+) s", log)
        if ready is None:
            continue
        if re.search(r"deps layer \w+ is in the node's cache", log):
            deps = "node cache"
        else:
            deps = "downloaded" if "deps layer ok" in log else "none"
        return Fetch(float(ready.group(1)), deps)
    return None


def deploy(stack: PrivateStack, project: Path, app: str, *, installs: bool = False) -> Deploy:
    """One `aether deploy` process, timed until its URL answers."""
    env = {**stack.cli_env(), "AETHER_LOG_FORMAT": "json", "AETHER_LOG_LEVEL": "info"}
    command = [AETHER, "deploy", "--app", app, "--path", str(project), "--format", "json"]
    settle()
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"aether deploy failed ({done.returncode}):\n{done.stderr}")
    result = json.loads(done.stdout)
    if result["status"] != "succeeded" or not result.get("url"):
        raise RuntimeError(f"aether deploy did not succeed: {result}")
    wait_online(result["url"])
    online_at = time.time()
    seconds = time.perf_counter() - started

    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    messages = [r["message"] for r in records]
    if (INSTALL_SKIPPED in messages) == installs:
        raise RuntimeError(
            f"the deploy of {project} installed {'nothing' if installs else 'again'}"
        )
    created = next(i for i, m in enumerate(messages) if m.startswith("deployment "))
    upload_done = datetime.fromisoformat(records[created - 1]["ts"].replace("Z", "+00:00"))
    return Deploy(
        seconds=seconds,
        rollout=online_at - upload_done.timestamp(),
        uploaded=bool(result["uploaded"]),
        digest=result["digest"],
        size_bytes=int(result["size_bytes"]),
        uploaded_bytes=int(result["uploaded_bytes"]),
        uploaded_layers=tuple(layer["role"] for layer in result["layers"] if layer["uploaded"]),
        fetch=pod_fetch(stack, app, result["digest"]),
    )


def warm_up(stack: PrivateStack, project: Path, app: str) -> Fetch | None:
    """The untimed first deploy; the fetch of its pod, the first on the node."""
    env = stack.cli_env()
    command = [AETHER, "deploy", "--app", app, "--path", str(project), "--format", "json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"the warm-up deploy failed ({done.returncode}):\n{done.stderr}")
    result = json.loads(done.stdout)
    wait_online(result["url"])
    return pod_fetch(stack, app, result["digest"])


def wait_online(url: str) -> None:
    deadline = time.monotonic() + ONLINE_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=5).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} never answered")


@dataclass(frozen=True)
class Build:
    copy: float
    npm: float
    pack: float
    store: float
    size_bytes: int

    @property
    def seconds(self) -> float:
        return self.copy + self.npm + self.pack + self.store


def settle() -> None:
    """Write back what earlier steps left dirty, before the next timed one starts."""
    os.sync()


def server_build(project: Path, s3: Any, key: str) -> Build:
    """The incumbent's pipeline up to the rollout: copy, npm ci, pack, store."""
    settle()
    build = Path(tempfile.mkdtemp(prefix="build-", dir=WORK))
    tree = build / "src"
    artifact = build / "app.tar.gz"
    try:
        t0 = time.perf_counter()
        shutil.copytree(project, tree, ignore=shutil.ignore_patterns("node_modules", ".aether"))
        t1 = time.perf_counter()
        quiet = ["--no-audit", "--no-fund"]
        scripts = json.loads((tree / "package.json").read_text()).get("scripts") or {}
        if "build" in scripts:
            steps = [
                ["npm", "ci", *quiet],
                ["npm", "run", "build"],
                ["npm", "prune", "--omit=dev", *quiet],
            ]
        else:
            steps = [["npm", "ci", "--omit=dev", *quiet]]
        for step in steps:
            subprocess.run(step, cwd=tree, check=True, capture_output=True, env=_node24_env())
        t2 = time.perf_counter()
        subprocess.run(["bash", "-c", PACK.format(out=artifact)], cwd=tree, check=True)
        t3 = time.perf_counter()
        with artifact.open("rb") as body:
            s3.put_object(Bucket=BASELINE_BUCKET, Key=key, Body=body)
        t4 = time.perf_counter()
        return Build(t1 - t0, t2 - t1, t3 - t2, t4 - t3, artifact.stat().st_size)
    finally:
        shutil.rmtree(build, ignore_errors=True)


def _node24_env() -> dict[str, str]:
    """The baseline builds under the same Node as ours (the one `aether deploy` fetched)."""
    from aether_cli.nodejs import ensure_node

    node = ensure_node(24)
    return {**os.environ, "PATH": f"{node.bin_dir}{os.pathsep}{os.environ['PATH']}"}


@dataclass
class AppRun:
    scenarios: tuple[str, ...] = SCENARIOS
    ours: dict[str, list[Deploy]] = field(default_factory=lambda: {s: [] for s in SCENARIOS})
    builds: list[Build] = field(default_factory=list)
    first_fetch: Fetch | None = None  # the first pod of the app on the node


def change_dependencies(project: Path, rep: int) -> None:
    """Add an extra package on even repetitions, remove it on odd ones (lockfile only)."""
    verb = "install" if rep % 2 == 0 else "uninstall"
    extra = EXTRA_PACKAGES[(rep // 2) % len(EXTRA_PACKAGES)]
    package = extra if verb == "install" else extra.rpartition("@")[0]
    quiet = ["--package-lock-only", "--no-audit", "--no-fund"]
    subprocess.run(["npm", verb, *quiet, package], cwd=project, check=True, capture_output=True)


def bench_app(
    stack: PrivateStack, app: str, reps: int, s3: Any, scenarios: tuple[str, ...] = SCENARIOS
) -> AppRun:
    project = prepare(app)
    entry = entry_file(project)
    original = entry.read_text()
    manifests = {
        name: (project / name).read_bytes()
        for name in ("package.json", "package-lock.json")
        if (project / name).is_file()
    }
    name = f"bench-{app}"
    # Untimed warm-up: the staging install is made, the bench app exists and runs, npm's
    # cache and the page cache are warm.
    first_fetch = warm_up(stack, project, name)
    staged = project / ".aether" / "staging" / "node_modules"
    print(f"{app}: {project} ({tree_size(staged) / 1e6:.0f} MB node_modules)", file=sys.stderr)
    server_build(project, s3, f"{app}/warm-up/app.tar.gz")

    run = AppRun(scenarios, first_fetch=first_fetch)
    expected_upload = {
        "cold": ("deps", "app"),
        "unchanged": (),
        "source-only": ("app",),
        "dependency-change": ("deps", "app"),
    }
    try:
        for rep in range(reps):
            for scenario in scenarios:
                if scenario == "source-only":
                    with entry.open("a") as handle:
                        handle.write(f"// deploy bench change {rep}\n")
                if scenario == "dependency-change":
                    change_dependencies(project, rep)
                target = f"{name}-cold-{rep}" if scenario == "cold" else name
                sample = deploy(stack, project, target, installs=scenario == "dependency-change")
                expected = expected_upload[scenario]
                if scenario == "dependency-change" and rep % 2:
                    # Back to the original lockfile: its dependencies layer is held already.
                    expected = ("app",)
                if sample.uploaded_layers != expected:
                    raise RuntimeError(f"{app} {scenario}: uploaded {sample.uploaded_layers}")
                run.ours[scenario].append(sample)
            run.builds.append(server_build(project, s3, f"{app}/{rep}/app.tar.gz"))
            print(
                f"{app} rep {rep + 1}/{reps}: "
                + ", ".join(f"{s} {run.ours[s][-1].seconds:.2f}s" for s in scenarios)
                + f", server build {run.builds[-1].seconds:.2f}s",
                file=sys.stderr,
            )
    finally:
        entry.write_text(original)
        for file_name, data in manifests.items():
            (project / file_name).write_bytes(data)
    return run


def report(app: str, run: AppRun) -> dict[str, Any]:
    p95 = pack_bench.p95
    median = statistics.median
    builds = [b.seconds for b in run.builds]
    # The incumbent rolls out a new artifact every time: a cold rollout for a new app,
    # else the rollout of a changed one (ours, measured in the same run).
    changed = next(
        (s for s in ("source-only", "dependency-change", "cold") if run.ours.get(s)), None
    )
    rollout = {s: median(d.rollout for d in run.ours[s]) for s in run.scenarios}
    baseline_rollout = {
        s: rollout["cold"] if s == "cold" else rollout[changed or s] for s in run.scenarios
    }
    summary: dict[str, Any] = {}
    for scenario in run.scenarios:
        samples = run.ours[scenario]
        ours = [d.seconds for d in samples]
        base = [b + baseline_rollout[scenario] for b in builds]
        ratio = p95(ours) / p95(base)
        sent = max(d.uploaded_bytes for d in samples)
        size = samples[-1].size_bytes
        print(
            f"{app:6} {scenario:17} {median(ours):8.2f} {p95(ours):8.2f} "
            f"{rollout[scenario]:8.2f}  "
            f"{median(base):8.2f} {p95(base):8.2f} {baseline_rollout[scenario]:8.2f}  "
            f"{100 * ratio:7.1f} %  {sent / 1e6:9.3f} {100 * sent / size:7.2f} %"
        )
        fetched = [d.fetch for d in samples if d.fetch is not None]
        summary[scenario] = {
            "pod_fetch_p50_s": round(median(f.seconds for f in fetched), 3) if fetched else None,
            "pod_deps_from": sorted({f.deps for f in fetched}),
            "ours_p50_s": round(median(ours), 3),
            "ours_p95_s": round(p95(ours), 3),
            "baseline_p50_s": round(median(base), 3),
            "baseline_p95_s": round(p95(base), 3),
            "p95_of_baseline": round(ratio, 4),
            "uploaded_bytes_max": sent,
            "artifact_bytes": size,
            "uploaded_layers": list(samples[-1].uploaded_layers),
        }
    return summary


def details(app: str, run: AppRun) -> None:
    median = statistics.median
    parts = ("copy", "npm", "pack", "store")
    split = ", ".join(f"{p} {median(getattr(b, p) for b in run.builds):.2f}" for p in parts)
    last = run.ours[run.scenarios[-1]][-1]  # any scenario's artifact: its size
    print(
        f"{app}: server build median {median(b.seconds for b in run.builds):.2f}s ({split}); "
        f"artifact ours {last.size_bytes / 1e6:.1f} MB, baseline "
        f"{run.builds[-1].size_bytes / 1e6:.1f} MB"
    )
    for scenario in run.scenarios:
        print(f"  ours {scenario}: {[round(d.seconds, 2) for d in run.ours[scenario]]}")
    print(f"  server builds: {[round(b.seconds, 2) for b in run.builds]}")
    fetches = {
        kind: [
            d.fetch.seconds
            for s in run.scenarios
            for d in run.ours[s]
            if d.fetch and d.fetch.deps == kind
        ]
        for kind in ("downloaded", "node cache")
    }
    first = run.first_fetch
    if first is not None:
        print(f"  fetch of the first pod on the node (deps {first.deps}): {first.seconds:.2f}s")
    for kind, times in fetches.items():
        if times:
            print(
                f"  pod fetch, deps {kind}: median {median(times):.2f}s of {[round(t, 2) for t in times]}"
            )


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the stack's `finally`


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument(
        "--apps", default=",".join(APPS), help=f"comma-separated: {', '.join(APPS)}"
    )
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"comma-separated: {', '.join(SCENARIOS)}"
    )
    args = parser.parse_args()
    apps = [a for a in args.apps.split(",") if a]
    scenarios = tuple(s for s in SCENARIOS if s in args.scenarios.split(","))
    unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
    if not set(apps) <= set(APPS) or args.reps < 1 or unknown or not scenarios:
        parser.error(
            f"--apps takes {', '.join(APPS)}; --scenarios {', '.join(SCENARIOS)}; --reps at least 1"
        )
    signal.signal(signal.SIGTERM, _stop)
    # As installed, Python caches bytecode: a shell that turns the cache off would time the
    # compiling of the CLI and of the fetcher on every deploy, which no user's machine does.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

    import boto3

    WORK.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    load_before = os.getloadavg()
    runs: dict[str, AppRun] = {}
    with embedded_stack() as stack:
        s3 = boto3.client(
            "s3",
            endpoint_url=stack.env["AETHER_S3_ENDPOINT_URL"],
            aws_access_key_id=stack.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=stack.env["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket=BASELINE_BUCKET)
        for app in apps:
            runs[app] = bench_app(stack, app, args.reps, s3, scenarios)
    elapsed = time.perf_counter() - began

    print(
        f"deploy latency, {args.reps} reps per app and scenario; {os.cpu_count()} cores; "
        f"load avg (1/5/15 min) before {load_before[0]:.2f}/{load_before[1]:.2f}/"
        f"{load_before[2]:.2f}, after {'/'.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        "ours: `aether deploy` (fresh process, SBOM on) until the first successful GET of "
        "its URL; the staging install made by an untimed first deploy, nothing installed on "
        "any timed deploy (a source-only change of typescript runs its build)"
    )
    print(
        "baseline: copy without node_modules + `npm ci --omit=dev` (typescript: `npm ci && "
        "npm run build && npm prune --omit=dev`; npm cache warm) + "
        "tar | gzip -6 -n + boto3 PUT to SeaweedFS, plus our median rollout for that app "
        "(cold: our cold rollouts; unchanged, source-only: our source-only rollouts)"
    )
    print(
        f"{'app':6} {'scenario':17} {'ours p50':>8} {'p95':>8} {'rollout':>8}  "
        f"{'base p50':>8} {'p95':>8} {'rollout':>8}  {'p95/base':>9}  {'sent MB':>9} "
        f"{'of size':>9}"
    )
    summary = {app: report(app, run) for app, run in runs.items()}
    for app, run in runs.items():
        details(app, run)
    print(f"whole run: {elapsed:.0f}s")
    print(json.dumps({"reps": args.reps, "apps": summary}, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
