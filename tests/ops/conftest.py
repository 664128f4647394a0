"""Fixtures of the operations tests: the Chalice app packaged once per session."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.ops.iam import ROOT

STAGE = "prod"
# No network for chalice or pip: proxies at a closed port, no package index.
OFFLINE = {
    "AWS_ACCESS_KEY_ID": "packaging",
    "AWS_SECRET_ACCESS_KEY": "packaging",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "PIP_NO_INDEX": "1",
    "CHECKPOINT_DISABLE": "1",
}


def copy_project(target: Path, with_requirements: bool) -> Path:
    target.mkdir(parents=True)
    shutil.copy2(ROOT / "app.py", target / "app.py")
    shutil.copytree(ROOT / "chalicelib", target / "chalicelib", ignore=_caches)
    shutil.copytree(ROOT / ".chalice", target / ".chalice", ignore=_local_state)
    requirements = (ROOT / "requirements.txt").read_text() if with_requirements else ""
    (target / "requirements.txt").write_text(requirements)
    return target


def _caches(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n == "__pycache__" or n.endswith(".pyc")}


def _local_state(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n in {"deployments", "deployed", "venv"}}


def chalice_package(
    project: Path, out: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    chalice = Path(sys.executable).with_name("chalice")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AETHER_", "AWS_"))}
    return subprocess.run(
        [str(chalice), "package", "--stage", STAGE, *args, str(out)],
        cwd=project,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="session")
def chalice_terraform(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("package")
    project = copy_project(work / "project", with_requirements=False)
    out = work / "out"
    done = chalice_package(project, out, "--pkg-format", "terraform", env=OFFLINE)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["chalice.tf.json", "deployment.zip"]
    document: dict[str, Any] = json.loads((out / "chalice.tf.json").read_text())
    document["_zip"] = out / "deployment.zip"
    return document


@pytest.fixture(scope="session")
def chalice_module(chalice_terraform: dict[str, Any]) -> Path:
    """The directory ``chalice package`` wrote (chalice.tf.json + deployment.zip)."""
    path: Path = chalice_terraform["_zip"].parent
    return path
