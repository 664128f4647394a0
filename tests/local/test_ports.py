"""Ports the local stack picks: the kernel's choice, or a range of this process's own."""

from __future__ import annotations

import contextlib
import socket

import pytest

from infra.local.processes import LOOPBACK, PORT_RANGE_VARIABLE, free_port, free_ports


def test_a_port_range_keeps_every_pick_inside_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORT_RANGE_VARIABLE, "30100-30140")
    picked = free_ports(20)
    assert len(set(picked)) == 20
    assert all(30100 <= port < 30140 for port in picked)
    assert 30100 <= free_port() < 30140


def test_a_range_whose_ports_are_all_taken_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORT_RANGE_VARIABLE, "30200-30203")
    with contextlib.ExitStack() as stack:
        for port in range(30200, 30203):
            stack.enter_context(socket.socket()).bind((LOOPBACK, port))
        with pytest.raises(RuntimeError, match=r"no free port on 127\.0\.0\.1 in 30200-30203"):
            free_port()


def test_without_a_range_the_kernel_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PORT_RANGE_VARIABLE, raising=False)
    assert len(set(free_ports(3))) == 3
