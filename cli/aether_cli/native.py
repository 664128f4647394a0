"""Native addons (``.node`` files): do they run on the artifact's target?

Each one must be an ELF shared object for the target's machine, linked against glibc
(Aether's base images are Debian slim), and, unless it uses Node-API (whose ABI is
stable across majors), built for the target Node major's ABI. A Mach-O or PE file is
what an install on macOS or Windows leaves behind; the fix is to let the package
manager fetch the Linux build, which Aether asks it to do.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

from aether_cli.contract import NodeLine

# ELF e_machine values (elf.h) of the platforms Aether targets, and a few it meets.
_MACHINES = {"amd64": 62, "arm64": 183}
_MACHINE_NAMES = {
    3: "x86 (32-bit)",
    40: "ARM (32-bit)",
    62: "x86-64",
    183: "AArch64",
    243: "RISC-V",
}
_ABI_SYMBOL = re.compile(rb"node_register_module_v(\d+)\0")
_NAPI_SYMBOL = b"napi_register_module_v1\0"


class NativeAddonError(Exception):
    """A native addon that cannot run on the target (the CLI exits 10)."""


@dataclass(frozen=True)
class NativeAddon:
    path: str  # inside the artifact
    package: str
    machine: str
    abi: str  # "node-api", or the NODE_MODULE_VERSION it was built for

    def to_json(self) -> dict[str, str]:
        return {
            "path": self.path,
            "package": self.package,
            "machine": self.machine,
            "abi": self.abi,
        }


def check_addon(
    path: Path, *, shown: str, package: str, platform: str, node: NodeLine
) -> NativeAddon:
    """Describe ``path`` or raise :class:`NativeAddonError` saying what to do."""
    data = path.read_bytes()
    arch = platform.split("/")[1]
    hint = (
        f"reinstall so that the package manager fetches the {platform} build of {package}, "
        "or rebuild it for that platform"
    )
    if data[:4] in (b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe"):
        raise NativeAddonError(
            f"{shown} is a macOS (Mach-O) binary, not one for {platform}: {hint}"
        )
    if data[:2] == b"MZ":
        raise NativeAddonError(f"{shown} is a Windows (PE) binary, not one for {platform}: {hint}")
    if data[:4] != b"\x7fELF" or len(data) < 20:
        raise NativeAddonError(f"{shown} is not a shared library (no ELF header): {hint}")
    byte_order = "<" if data[5] == 1 else ">"
    (machine,) = struct.unpack_from(byte_order + "H", data, 18)
    if machine != _MACHINES[arch]:
        name = _MACHINE_NAMES.get(machine, f"machine {machine}")
        raise NativeAddonError(f"{shown} is built for {name}, not {platform}: {hint}")
    if b"ld-musl" in data or b"libc.musl" in data:
        raise NativeAddonError(
            f"{shown} is linked against musl libc; {platform} runs glibc: {hint}"
        )
    if _NAPI_SYMBOL in data:
        abi = "node-api"
    else:
        match = _ABI_SYMBOL.search(data)
        if match is None:
            abi = "unknown"
        else:
            built_for = int(match.group(1))
            if built_for != node.abi:
                raise NativeAddonError(
                    f"{shown} is built for Node ABI {built_for}, but Node {node.major} needs "
                    f"ABI {node.abi}: rebuild it with Node {node.major} (npm rebuild {package})"
                )
            abi = str(built_for)
    return NativeAddon(shown, package, _MACHINE_NAMES[machine], abi)
