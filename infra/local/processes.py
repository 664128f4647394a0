"""Background processes of the local stack: start, wait until they answer, stop."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"


PORT_RANGE_VARIABLE = "AETHER_PORT_RANGE"


def _port_range() -> range | None:
    """``AETHER_PORT_RANGE=LOW-HIGH``: where this process and its children pick ports.

    A port picked here is free only until its server binds it; two test workers picking from
    the kernel's one ephemeral range can be handed the same port in that window. Each worker
    therefore picks from a range of its own, below the ephemeral range that client sockets use.
    """
    spec = os.environ.get(PORT_RANGE_VARIABLE, "")
    if not spec:
        return None
    low, _, high = spec.partition("-")
    return range(int(low), int(high))


def _bound(sock: socket.socket, span: range | None) -> int:
    if span is None:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port
    start = random.randrange(len(span))  # noqa: S311 - spreads picks, secures nothing
    for offset in range(len(span)):
        candidate = span[(start + offset) % len(span)]
        try:
            sock.bind((LOOPBACK, candidate))
        except OSError:
            continue
        return candidate
    raise RuntimeError(f"no free port on {LOOPBACK} in {span.start}-{span.stop}")


def free_port() -> int:
    with socket.socket() as sock:
        return _bound(sock, _port_range())


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports, all held open together while picked."""
    span = _port_range()
    with contextlib.ExitStack() as stack:
        return [_bound(stack.enter_context(socket.socket()), span) for _ in range(count)]


def free_port_block(count: int, attempts: int = 50) -> int:
    """The first of ``count`` consecutive free loopback ports (SeaweedFS takes a block)."""
    for _ in range(attempts):
        base = free_port()
        if base + count > 65535:
            continue
        with contextlib.ExitStack() as stack:
            try:
                for port in range(base, base + count):
                    stack.enter_context(socket.socket()).bind((LOOPBACK, port))
            except OSError:
                continue
        return base
    raise RuntimeError(f"no {count} consecutive free ports on {LOOPBACK}")


def port_answers(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(
    port: int, process: subprocess.Popen[bytes] | None, log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_answers(port):
            return
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"nothing answered on {LOOPBACK}:{port}; log {log}:\n{tail}")


@dataclass
class Service:
    """A server process whose output goes to ``log``; its own process group."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the service's process group; SIGKILL it if the leader outlives ``timeout``."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start(
    name: str,
    command: Sequence[str],
    port: int,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 30.0,
    inherit: bool = True,
) -> Service:
    """Start ``command`` with its output in ``log`` and wait until ``port`` answers.

    ``env`` comes on top of this process's environment, or alone when not ``inherit``.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        process = subprocess.Popen(
            list(command),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**(os.environ if inherit else {}), **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    service = Service(name, port, process, log)
    try:
        wait_for_port(port, process, log, timeout)
    except BaseException:
        service.stop()
        raise
    return service


def stop_group(pid: int, timeout: float = 5.0) -> bool:
    """SIGTERM the process group led by ``pid`` (not our child: ``make down`` finds it by
    its pidfile), SIGKILL it if it lingers."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True


def stop_strays(directory: Path) -> int:
    """SIGKILL what a killed component left running in ``directory``; returns how many.

    Pods are processes in sessions of their own, working under the cluster's state
    directory: a cluster killed with SIGKILL leaves them running. Only session leaders
    without a terminal match (never someone's shell that happens to be there). Linux only:
    elsewhere there is no /proc to search, and nothing is stopped.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return 0
    strays: set[int] = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = (entry / "cwd").readlink()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The fields after the command's ")": state ppid pgrp session tty_nr ...
        _, _, pgrp, session, tty = stat[stat.rindex(")") + 2 :].split()[:5]
        pid = int(entry.name)
        if cwd.is_relative_to(directory) and int(session) == pid and int(tty) == 0:
            strays.add(int(pgrp))
    strays.discard(os.getpgrp())
    for group in strays:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    return len(strays)


def moto_command(port: int) -> list[str]:
    return [sys.executable, "-m", "infra.local.moto_server", "-H", LOOPBACK, "-p", str(port)]


def start_moto(port: int, log: Path) -> Service:
    return start("moto", moto_command(port), port, log, cwd=Path(__file__).resolve().parents[2])
