"""Pack + hash of a real Node.js app: `aether deploy --pack-only` against tar | gzip | sha256sum.

    .venv/bin/python bench/pack_bench.py [--reps 7] [--via cli|library] [--with-sbom]

Setup (first run only, needs the npm registry): a Node.js app depending on a few
heavy packages (typescript, aws-sdk v2, @babel/core, date-fns, rxjs, lodash;
~200 MB, ~14k files) is installed with npm under bench/.work/bigapp (git-ignored),
through the same install step `aether deploy` uses (`npm ci --omit=dev`, skipped
once its stamp matches).

Then, in the same run and interleaved so both see the same machine load, N
repetitions of

* ours: `aether deploy --pack-only --no-sbom --format json --path APP` (a fresh
  process, so interpreter start-up and imports are counted), or with
  `--via library` the in-process `pack_project` call;
* baseline: `tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - .
  | gzip -6 -n | sha256sum` in APP (our `.aether/` output is removed first so both
  pack the same files).

Prints median and p95 of each, the ratio, both archive sizes, and whether our
digest was identical on every run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
APP = HERE / ".work" / "bigapp"
AETHER = Path(sys.executable).with_name("aether")

PACKAGE_JSON = {
    "name": "aether-bench-app",
    "version": "1.0.0",
    "private": True,
    "scripts": {"start": "node server.js"},
    "dependencies": {
        "@babel/core": "7.26.0",
        "aws-sdk": "2.1692.0",
        "date-fns": "4.1.0",
        "lodash": "4.17.21",
        "rxjs": "7.8.1",
        "typescript": "5.6.3",
    },
}
SERVER_JS = "require('http').createServer((q, s) => s.end('ok')).listen(process.env.PORT || 3000)\n"
BASELINE = (
    "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - . "
    "| gzip -6 -n | sha256sum"
)


def setup() -> None:
    """The project and its lockfile; the CLI's first deploy (or pack) installs it."""
    APP.mkdir(parents=True, exist_ok=True)
    package = APP / "package.json"
    text = json.dumps(PACKAGE_JSON, indent=2) + "\n"
    if not package.exists() or package.read_text() != text:
        package.write_text(text)
        (APP / "package-lock.json").unlink(missing_ok=True)
    (APP / "server.js").write_text(SERVER_JS)
    if not (APP / "package-lock.json").exists():
        print("setup: resolving a lockfile with npm", file=sys.stderr)
        subprocess.run(
            ["npm", "install", "--package-lock-only", "--no-audit", "--no-fund"],
            cwd=APP,
            check=True,
        )


def tree_stats() -> tuple[int, int]:
    files = size = 0
    for dirpath, dirnames, filenames in os.walk(APP):
        dirnames[:] = [d for d in dirnames if d != ".aether"]
        for name in filenames:
            st = (Path(dirpath) / name).lstat()
            files += 1
            size += st.st_size
    return files, size


def run_ours(via: str, with_sbom: bool) -> tuple[float, str, int]:
    # Measure a real pack: without its stamp the CLI cannot reuse the last archive.
    (APP / ".aether" / "build" / "pack-stamp.json").unlink(missing_ok=True)
    if via == "cli":
        command = [str(AETHER), "deploy", "--pack-only", "--format", "json", "--path", str(APP)]
        if not with_sbom:
            command.append("--no-sbom")
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, check=True)
        elapsed = time.perf_counter() - start
        out = json.loads(proc.stdout)
        return elapsed, out["digest"], int(out["size_bytes"])
    from aether_cli.pack import pack_project
    from aether_cli.project import detect_project

    start = time.perf_counter()
    result = pack_project(detect_project(APP), APP / ".aether" / "build", sbom=with_sbom)
    return time.perf_counter() - start, result.digest, result.size_bytes


def run_baseline() -> tuple[float, str]:
    shutil.rmtree(APP / ".aether", ignore_errors=True)
    start = time.perf_counter()
    proc = subprocess.run(
        ["bash", "-c", BASELINE], cwd=APP, capture_output=True, text=True, check=True
    )
    elapsed = time.perf_counter() - start
    return elapsed, proc.stdout.split()[0]


def baseline_size() -> int:
    """Measured once, outside the timed runs, so the timed command stays verbatim."""
    shutil.rmtree(APP / ".aether", ignore_errors=True)
    command = BASELINE.replace("sha256sum", "wc -c")
    proc = subprocess.run(
        ["bash", "-c", command], cwd=APP, capture_output=True, text=True, check=True
    )
    return int(proc.stdout.strip())


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--via", choices=("auto", "cli", "library"), default="auto")
    parser.add_argument("--with-sbom", action="store_true", help="also write the SBOM")
    parser.add_argument("--skip-setup", action="store_true")
    args = parser.parse_args()

    if not args.skip_setup:
        setup()
    via = args.via
    if via == "auto":
        help_text = subprocess.run(
            [str(AETHER), "deploy", "--help"], capture_output=True, text=True, check=False
        ).stdout
        via = "cli" if "--pack-only" in help_text else "library"

    files, size = tree_stats()
    print(
        f"tree: {files} files, {size / 1e6:.1f} MB; cores: {os.cpu_count()}; "
        f"load before: {os.getloadavg()[0]:.2f}"
    )
    ours_label = (
        "aether deploy --pack-only" + ("" if args.with_sbom else " --no-sbom")
        if via == "cli"
        else "pack_project()" + (" + SBOM" if args.with_sbom else "")
    )

    # One warm-up of each: page cache, npm/python caches.
    run_ours(via, args.with_sbom)
    run_baseline()

    ours: list[float] = []
    base: list[float] = []
    digests: set[str] = set()
    base_digests: set[str] = set()
    ours_size = 0
    for _ in range(args.reps):
        elapsed, digest, ours_size = run_ours(via, args.with_sbom)
        ours.append(elapsed)
        digests.add(digest)
        elapsed, digest = run_baseline()
        base.append(elapsed)
        base_digests.add(digest)

    base_size = baseline_size()
    width = max(len(ours_label), len(BASELINE[:40]))
    print(f"{'':{width}}  {'median s':>9} {'p95 s':>7} {'size bytes':>12}")
    print(f"{ours_label:{width}}  {statistics.median(ours):9.2f} {p95(ours):7.2f} {ours_size:12,}")
    print(
        f"{'tar | gzip -6 -n | sha256sum':{width}}  "
        f"{statistics.median(base):9.2f} {p95(base):7.2f} {base_size:12,}"
    )
    ratio = statistics.median(ours) / statistics.median(base)
    print(f"ratio (ours / pipeline, median): {ratio:.2f}  ({1 / ratio:.2f}x faster)")
    print(f"size ratio (ours / pipeline): {ours_size / base_size:.4f}")
    print(
        f"our digest identical on all {args.reps} runs: {len(digests) == 1} "
        f"({next(iter(digests))[:16]}...); pipeline identical: {len(base_digests) == 1}"
    )
    print(f"runs ours: {[round(x, 2) for x in ours]}")
    print(f"runs pipeline: {[round(x, 2) for x in base]}")
    print(f"load after: {os.getloadavg()[0]:.2f}")
    return 0 if len(digests) == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
