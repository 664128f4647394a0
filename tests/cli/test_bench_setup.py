"""The benchmarks run on a fresh clone: they build what they need themselves."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from tests.cli.fixtures_commands import AETHER, isolated_env

ROOT = Path(__file__).resolve().parents[2]


def deploy_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_bench", ROOT / "bench/deploy_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return module


def test_the_deploy_bench_builds_what_a_fresh_clone_lacks(
    tmp_path: Path, hello_express_copy: Path
) -> None:
    bench = deploy_bench()
    # As cloned: no .aether. The bench's untimed first deploy installs in staging, and the
    # message the bench requires of every timed deploy is the CLI's own.
    for _ in range(2):
        done = subprocess.run(
            [AETHER, "deploy", "--pack-only", "--no-sbom", "--path", str(hello_express_copy)],
            env=isolated_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert bench.INSTALL_SKIPPED in done.stderr
