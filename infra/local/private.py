"""A whole embedded stack in a private state directory on free ports.

What tests and benchmarks use to run ``make up``'s stack beside (not instead
of) the developer's own: nothing they start touches ``.aether/`` or the
default ports.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.local.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class PrivateStack:
    state: Path
    env: dict[str, str]  # what a client needs: AETHER_API_URL, AETHER_TOKEN, AWS_*, ...

    @property
    def api_url(self) -> str:
        return self.env["AETHER_API_URL"]


@contextmanager
def private_stack(state: Path) -> Iterator[PrivateStack]:
    """``python -m infra.local up`` with its state in ``state``; ``down`` on exit, always."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AETHER_", "AWS_", "POWERTOOLS_")) and name != "KUBECONFIG"
    }
    env = {
        **inherited,
        "AETHER_STATE_DIR": str(state),
        "AETHER_MOTO_PORT": str(free_port()),
        "AETHER_API_PORT": str(free_port()),
        "AETHER_WEBHOOK_PORT": str(free_port()),
        "AETHER_KUBE_PORT": str(free_port()),
        "AETHER_APP_PORT_BASE": str(free_port()),
    }
    command = [sys.executable, "-m", "infra.local"]
    try:
        started = subprocess.run(
            [*command, "up"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
        )
        if started.returncode != 0:
            raise RuntimeError(f"the stack did not start:\n{started.stdout}{started.stderr}")
        yield PrivateStack(state, {**env, **read_env_file(state / "local.env")})
    finally:
        subprocess.run([*command, "down"], cwd=ROOT, env=env, capture_output=True, timeout=120)


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of a ``local.env`` (``export NAME='value'`` lines)."""
    if not path.exists():
        return {}
    pairs = (
        line.removeprefix("export ").split("=", 1)
        for line in path.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    return {name: value.strip("'") for name, value in pairs}
