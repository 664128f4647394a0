"""infra/kind cannot run here (no Docker): the scripts are checked by reading them."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from chalicelib.contract import supported_runtimes

KIND = Path(__file__).resolve().parents[2] / "infra" / "kind"
SCRIPTS = [KIND / "up.sh", KIND / "down.sh"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses_and_is_executable(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert script.stat().st_mode & 0o111
    assert script.read_text().startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in script.read_text()


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_scripts_pass_shellcheck() -> None:
    result = subprocess.run(
        ["shellcheck", *map(str, SCRIPTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_the_api_server_listens_on_loopback_only() -> None:
    config = yaml.safe_load((KIND / "cluster.yaml").read_text())
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert config["networking"]["apiServerAddress"] == "127.0.0.1"


def test_up_builds_loads_applies_and_writes_the_kubeconfig_in_order() -> None:
    text = (KIND / "up.sh").read_text()
    steps = [
        "kind create cluster",
        'docker build -t "aether-fetcher:1" "$root/infra/images/fetcher"',
        '-t "aether-nodejs:$major-slim"',
        'kind load docker-image --name "$cluster" "${images[@]}"',
        "infra/k8s/namespace.yaml",
        "infra/k8s/rbac.yaml",
        "create token",
        'cat >"$kubeconfig"',
    ]
    positions = [text.index(step) for step in steps]
    assert positions == sorted(positions)
    assert 'kubeconfig="$out/kind-kubeconfig"' in text
    assert 'node_majors="${AETHER_NODE_MAJORS:-$(supported_majors)}"' in text


def test_up_builds_an_image_for_each_node_line_in_support_by_default() -> None:
    text = (KIND / "up.sh").read_text()
    function = text[
        text.index("supported_majors() {") : text.index("\n}\n", text.index("supported_majors() {"))
        + 3
    ]
    root = KIND.parents[1]
    done = subprocess.run(
        ["bash", "-c", f"root={shlex.quote(str(root))}\n{function}supported_majors"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    expected = [runtime.removeprefix("node") for runtime in supported_runtimes()]
    assert done.stdout.split() == expected
    assert "20" not in expected
