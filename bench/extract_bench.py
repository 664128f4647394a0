"""The fetcher's extraction of the large app's dependencies layer, beside GNU tar.

    .venv/bin/python bench/extract_bench.py [--reps 3] [--baseline REV] [--layer PATH]

Extracts the layer (default `bench/.work/bigapp/.aether/build/layers/deps/layer.tar.gz`,
made by `bench/deploy_bench.py --apps large` or `aether deploy --pack-only --path
bench/.work/bigapp`) with `infra/images/fetcher/fetch.py`'s `extract` (every rule checked),
with `tar -xzf` (no checks: the floor), and, with ``--baseline REV``, with the fetcher as it
was at that git revision; each repetition into a fresh directory, the three interleaved so
that they share the machine's load. Each of the fetcher's trees is compared with the first
one (every path, type, mode, size, mtime and link target): a faster extraction must not be
a different one. Prints the median and each wall time, and the median CPU time (user +
system, every thread; tar's from its rusage), which a loaded machine disturbs far less.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FETCH = ROOT / "infra" / "images" / "fetcher" / "fetch.py"
LAYER = HERE / ".work" / "bigapp" / ".aether" / "build" / "layers" / "deps" / "layer.tar.gz"


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def config(fetch: ModuleType) -> object:
    return fetch.Config(
        url="http://127.0.0.1/",
        digest="0" * 64,
        dest=Path("/nonexistent"),
        token=None,
        max_bytes=fetch.DEFAULT_MAX_BYTES,
        max_entries=fetch.DEFAULT_MAX_ENTRIES,
        max_path=fetch.DEFAULT_MAX_PATH,
        max_depth=fetch.DEFAULT_MAX_DEPTH,
        retries=0,
        retry_delay=0.0,
        timeout=30.0,
    )


def listing(root: Path) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            info = full.lstat()
            link = str(full.readlink()) if full.is_symlink() else ""
            size = 0 if full.is_dir() and not link else info.st_size
            mtime = int(info.st_mtime) if not link else 0
            out[str(full.relative_to(root))] = (info.st_mode, size, mtime, link)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--baseline", help="a git revision whose fetcher to time beside")
    parser.add_argument("--layer", type=Path, default=LAYER)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aether-extract-bench-"))
    runners: dict[str, ModuleType] = {"fetcher": load(FETCH, "fetch_current")}
    if args.baseline:
        old = work / "fetch_baseline.py"
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{args.baseline}:infra/images/fetcher/fetch.py"],
            check=True,
            capture_output=True,
        ).stdout
        old.write_bytes(source)
        runners = {f"fetcher at {args.baseline}": load(old, "fetch_baseline"), **runners}
    times: dict[str, list[float]] = {name: [] for name in runners} | {"tar -xzf": []}
    cpu: dict[str, list[float]] = {name: [] for name in times}
    reference: dict[str, tuple[object, ...]] | None = None
    try:
        for rep in range(args.reps):
            for name, fetch in runners.items():
                tree = work / f"tree-{rep}"
                tree.mkdir()
                started, cpu_started = time.perf_counter(), time.process_time()
                fetch.extract(args.layer, tree, config(fetch))
                times[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - cpu_started)
                current = listing(tree)
                if reference is None:
                    reference = current
                elif current != reference:
                    differ = sorted(set(current.items()) ^ set(reference.items()))[:5]
                    raise SystemExit(f"{name} extracted a different tree: {differ}")
                shutil.rmtree(tree)
            tree = work / f"tar-{rep}"
            tree.mkdir()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(["tar", "-xzf", str(args.layer), "-C", str(tree)], check=True)
            times["tar -xzf"].append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            cpu["tar -xzf"].append(used)
            shutil.rmtree(tree)
            print(
                f"rep {rep + 1}/{args.reps}: "
                + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()),
                file=sys.stderr,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert reference is not None
    print(
        f"layer {args.layer.stat().st_size / 1e6:.1f} MB compressed, {len(reference)} entries; "
        f"{args.reps} reps; {os.cpu_count()} cores; load avg "
        f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    tar, tar_cpu = statistics.median(times["tar -xzf"]), statistics.median(cpu["tar -xzf"])
    print(f"{'extraction':28} {'median':>8} {'vs tar':>7} {'CPU':>7} {'vs tar':>7}  each")
    for name, values in times.items():
        median, used = statistics.median(values), statistics.median(cpu[name])
        each = ", ".join(f"{v:.2f}" for v in values)
        print(
            f"{name:28} {median:7.2f}s {median / tar:6.2f}x {used:6.2f}s "
            f"{used / tar_cpu:6.2f}x  {each}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
