"""Native addons: every .node file must run on the artifact's target."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from aether_cli.contract import node_line
from aether_cli.native import NativeAddon, NativeAddonError, check_addon

NODE_24 = node_line(24)
assert NODE_24 is not None


def _elf(machine: int, *, body: bytes = b"") -> bytes:
    # e_ident: magic, 64-bit, little-endian, version 1; e_type ET_DYN, e_machine.
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    return ident + struct.pack("<HH", 3, machine) + bytes(44) + body


def _check(tmp_path: Path, data: bytes, platform: str = "linux/amd64") -> NativeAddon:
    path = tmp_path / "addon.node"
    path.write_bytes(data)
    assert NODE_24 is not None
    return check_addon(
        path,
        shown="node_modules/pkg/build/addon.node",
        package="pkg",
        platform=platform,
        node=NODE_24,
    )


def test_a_node_api_addon_for_the_target_machine_passes(tmp_path: Path) -> None:
    addon = _check(tmp_path, _elf(62, body=b"\0napi_register_module_v1\0"))
    assert addon.to_json() == {
        "path": "node_modules/pkg/build/addon.node",
        "package": "pkg",
        "machine": "x86-64",
        "abi": "node-api",
    }
    arm = _check(tmp_path, _elf(183, body=b"\0napi_register_module_v1\0"), "linux/arm64")
    assert arm.machine == "AArch64"


def test_an_addon_built_for_the_target_nodes_abi_passes(tmp_path: Path) -> None:
    addon = _check(tmp_path, _elf(62, body=b"\0node_register_module_v137\0"))
    assert addon.abi == "137"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"\xcf\xfa\xed\xfe" + bytes(60),
            r"addon\.node is a macOS \(Mach-O\) binary, not one for linux/amd64",
        ),
        (b"\xca\xfe\xba\xbe" + bytes(60), r"macOS \(Mach-O\)"),
        (b"MZ" + bytes(62), r"is a Windows \(PE\) binary"),
        (_elf(183), r"is built for AArch64, not linux/amd64"),
        (_elf(40), r"is built for ARM \(32-bit\), not linux/amd64"),
        (_elf(62, body=b"/lib/ld-musl-x86_64.so.1\0"), r"linked against musl libc"),
        (
            _elf(62, body=b"\0node_register_module_v127\0"),
            r"built for Node ABI 127, but Node 24 needs ABI 137: rebuild it with Node 24 \(npm rebuild pkg\)",
        ),
        (b"#!/bin/sh\n" + bytes(20), r"not a shared library"),
    ],
)
def test_an_addon_that_cannot_run_on_the_target_fails_naming_the_file(
    tmp_path: Path, data: bytes, message: str
) -> None:
    with pytest.raises(NativeAddonError, match=message) as caught:
        _check(tmp_path, data)
    assert "node_modules/pkg/build/addon.node" in str(caught.value)
    if "Mach-O" in message or "AArch64" in message:
        assert "fetches the linux/amd64 build of pkg" in str(caught.value)
