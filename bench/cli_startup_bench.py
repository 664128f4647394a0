"""Cold-start time of ``aether --help`` / ``aether --version`` beside a bare interpreter.

    .venv/bin/python bench/cli_startup_bench.py [--runs 30] [--check] [--json]

Every round runs each command once, in turn, so drift on a busy machine hits
all of them alike. Reported: median and p95 wall time per command and the
ratio of each median to ``python -c pass`` measured in the same run, then the
``python -X importtime`` top imports for ``--help``.

Targets: median under 150 ms and within 4x the bare interpreter, so that
``aether --help`` feels instant. ``--check`` exits 1 when a target is missed
(``--limit-ms`` lets CI use a noise-tolerant 800 ms).

The baseline is this venv's interpreter, so it pays what every process here
pays (site, and the editable install's import hook); ``python -S -c pass``
(no site) is shown to make that visible. ``aether`` is the console-script
wrapper the user runs; the same call without it
(``python -c "from aether_cli.main import run; run()"``) shows what the wrapper
costs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

PYTHON = sys.executable
AETHER = str(Path(sys.executable).with_name("aether"))
IN_PROCESS = "import sys; from aether_cli.main import run; sys.argv[0] = 'aether'; run()"

COMMANDS: dict[str, list[str]] = {
    "python -c pass": [PYTHON, "-c", "pass"],
    "python -S -c pass (no site)": [PYTHON, "-S", "-c", "pass"],
    "aether --help": [AETHER, "--help"],
    "aether --version": [AETHER, "--version"],
    "python -c run() --version (no wrapper)": [PYTHON, "-c", IN_PROCESS, "--version"],
}
BASELINE = "python -c pass"
TARGETS = ("aether --help", "aether --version")


def time_once(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def import_profile(env: dict[str, str], top: int) -> list[tuple[str, int, int]]:
    """(module, self µs, cumulative µs) of ``--help``, slowest cumulative first."""
    result = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", IN_PROCESS, "--help"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match:
            rows.append((match.group(4), int(match.group(1)), int(match.group(2))))
    rows.sort(key=lambda row: row[2], reverse=True)
    return rows[:top]


def loaded_modules(env: dict[str, str], flag: str) -> list[str]:
    probe = (
        "import sys\nfrom aether_cli.main import cli\n"
        "try:\n    cli([sys.argv[1]])\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('requests', 'urllib3', 'nacl', 'tarfile', 'logging', 'json', 'tomllib', 'aether_cli'))))"
    )
    result = subprocess.run(
        [PYTHON, "-c", probe, flag], env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.splitlines()[-1].split()  # the last line, after the help text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--limit-ms", type=float, default=150.0)
    parser.add_argument("--max-ratio", type=float, default=4.0)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    # Without PYTHONDONTWRITEBYTECODE: any value of it, "0" too, stops the warm-up from
    # writing the .pyc files every later run would then compile again.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AETHER_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    for _ in range(args.warmup):  # compile .pyc files and warm the page cache
        for argv in COMMANDS.values():
            time_once(argv, env)
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):
        for name, argv in COMMANDS.items():
            samples[name].append(time_once(argv, env))

    base = statistics.median(samples[BASELINE])
    figures = {
        name: {
            "median_ms": round(statistics.median(values) * 1000, 1),
            "p95_ms": round(percentile(values, 0.95) * 1000, 1),
            "ratio_to_python": round(statistics.median(values) / base, 2),
        }
        for name, values in samples.items()
    }
    misses = [
        name
        for name in TARGETS
        if figures[name]["median_ms"] > args.limit_ms
        or figures[name]["ratio_to_python"] > args.max_ratio
    ]
    imports = import_profile(env, args.top)
    loaded = {flag: loaded_modules(env, flag) for flag in ("--help", "--version")}

    if args.json:
        print(
            json.dumps(
                {
                    "runs": args.runs,
                    "cpus": os.cpu_count(),
                    "python": sys.version.split()[0],
                    "figures": figures,
                    "help_imports_top": [
                        {"module": m, "self_us": s, "cumulative_us": c} for m, s, c in imports
                    ],
                    "loaded": loaded,
                    "targets_met": not misses,
                },
                indent=2,
            )
        )
    else:
        print(
            f"{args.runs} runs each, interleaved; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}"
        )
        print(f"{'command':<42} {'median':>9} {'p95':>9} {'x python':>9}")
        for name, figure in figures.items():
            print(
                f"{name:<42} {figure['median_ms']:>7.1f}ms {figure['p95_ms']:>7.1f}ms "
                f"{figure['ratio_to_python']:>8.2f}x"
            )
        print(
            f"\ntarget: median < {args.limit_ms:g} ms and <= {args.max_ratio:g}x python -c pass: "
            + ("met" if not misses else "MISSED by " + ", ".join(misses))
        )
        print("\npython -X importtime, aether --help, slowest cumulative:")
        print(f"{'module':<44} {'self':>8} {'cumul.':>8}")
        for module, self_us, cumulative_us in imports:
            print(f"{module:<44} {self_us / 1000:>6.1f}ms {cumulative_us / 1000:>6.1f}ms")
        for flag, modules in loaded.items():
            print(f"\nmodules of interest loaded by {flag}: {' '.join(modules) or '-'}")
    return 1 if args.check and misses else 0


if __name__ == "__main__":
    sys.exit(main())
