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


def test_the_deploy_bench_installs_what_a_fresh_clone_lacks(
    tmp_path: Path, hello_express_copy: Path
) -> None:
    bench = deploy_bench()
    bench.install_dependencies(hello_express_copy)  # as cloned: no node_modules
    again = subprocess.run(
        [AETHER, "deploy", "--pack-only", "--no-sbom", "--path", str(hello_express_copy)],
        env=isolated_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert bench.NPM_SKIPPED in again.stderr
