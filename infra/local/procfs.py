"""What /proc says about a container's processes (Linux only): who is in its process group,
and which TCP ports they listen on.

Each process's file descriptors name their sockets by inode (``socket:[12345]``); the
kernel's tables of TCP sockets (``/proc/net/tcp`` and ``tcp6``) give each inode its state and
local port. The group's listening ports are those of its sockets in state LISTEN.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

PROC = Path("/proc")
_LISTEN = "0A"  # TCP_LISTEN in the kernel's tables


def supported() -> bool:
    return (PROC / "net" / "tcp").is_file()


def listening_ports(pgid: int) -> set[int]:
    """The TCP ports the processes of group ``pgid`` listen on (empty where /proc is not)."""
    listeners = _listening_sockets()
    if not listeners:
        return set()
    ports: set[int] = set()
    for pid in group_members(pgid):
        for inode in _socket_inodes(pid):
            port = listeners.get(inode)
            if port is not None:
                ports.add(port)
    return ports


def group_members(pgid: int) -> list[int]:
    """The live processes of group ``pgid`` (zombies excluded)."""
    members: list[int] = []
    with contextlib.suppress(OSError):
        for entry in PROC.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
            fields = stat[stat.rfind(")") + 2 :].split()
            if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                members.append(int(entry.name))
    return members


def _listening_sockets() -> dict[int, int]:
    """Socket inode → local port, for every TCP socket in state LISTEN (IPv4 and IPv6)."""
    found: dict[int, int] = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            # sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid
            # timeout inode ...
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            port = int(fields[1].rsplit(":", 1)[1], 16)
            found[int(fields[9])] = port
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    directory = PROC / str(pid) / "fd"
    try:
        descriptors = list(directory.iterdir())
    except OSError:  # gone, or not ours to look at
        return inodes
    for descriptor in descriptors:
        try:
            target = str(descriptor.readlink())
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes
