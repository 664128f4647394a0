"""A whole embedded stack in a private state directory on free ports.

What tests and benchmarks use to run ``make up``'s stack beside (not instead
of) the developer's own: nothing they start touches ``.aether/`` or the
default ports. The stack keeps its ports for its whole life, so it can be
brought down and up again (or have a component killed) and find its state.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.local.processes import PORT_RANGE_VARIABLE, free_port_block, free_ports
from infra.local.seaweedfs import PORT_FLAGS

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "infra.local"]


@dataclass
class PrivateStack:
    state: Path
    env: dict[str, str]  # what a client needs: AETHER_API_URL, AETHER_TOKEN, AWS_*, ...
    launch_env: dict[str, str]  # what `python -m infra.local` runs with

    @property
    def api_url(self) -> str:
        return self.env["AETHER_API_URL"]

    def cli_env(self) -> dict[str, str]:
        """What the ``aether`` CLI runs with against this stack: logged in through the
        environment, its config and session private to the stack, Node binaries and
        package managers from this machine's own cache (downloaded once, not per stack)."""
        from aether_cli.session import cache_root

        return {
            **self.env,
            "XDG_CONFIG_HOME": str(self.state / "cli-config"),
            "XDG_CACHE_HOME": str(self.state / "cli-cache"),
            "AETHER_CACHE_DIR": str(cache_root(os.environ)),
        }

    def up(self) -> str:
        """``make up`` again; returns what it printed."""
        started = subprocess.run(
            [*COMMAND, "up"],
            cwd=ROOT,
            env=self.launch_env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if started.returncode != 0:
            raise RuntimeError(f"the stack did not start:\n{started.stdout}{started.stderr}")
        self.env = {**self.launch_env, **read_env_file(self.state / "local.env")}
        return started.stdout

    def down(self) -> str:
        stopped = subprocess.run(
            [*COMMAND, "down"],
            cwd=ROOT,
            env=self.launch_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return stopped.stdout

    def pid(self, name: str) -> int:
        """The process group leader of one component (records, seaweedfs, cluster, api, relay, oidc)."""
        return int((self.state / "pids" / f"{name}.pid").read_text())

    def kill(self, name: str) -> None:
        """``kill -9`` one component's whole process group, as a crash would end it."""
        os.killpg(self.pid(name), signal.SIGKILL)


@contextmanager
def private_stack(state: Path) -> Iterator[PrivateStack]:
    """``python -m infra.local up`` with its state in ``state``; ``down`` on exit, always."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name == PORT_RANGE_VARIABLE
        or (not name.startswith(("AETHER_", "AWS_", "POWERTOOLS_")) and name != "KUBECONFIG")
    }
    records, api, webhook, kube, oidc, apps = free_ports(6)
    launch_env = {
        **inherited,
        "AETHER_STATE_DIR": str(state),
        "AETHER_RECORDS_PORT": str(records),
        "AETHER_S3_PORT": str(free_port_block(len(PORT_FLAGS))),
        "AETHER_API_PORT": str(api),
        "AETHER_WEBHOOK_PORT": str(webhook),
        "AETHER_KUBE_PORT": str(kube),
        "AETHER_OIDC_PORT": str(oidc),
        "AETHER_APP_PORT_BASE": str(apps),
    }
    stack = PrivateStack(state, dict(launch_env), launch_env)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


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
