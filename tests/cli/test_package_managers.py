"""The package managers' small print: their YAML, their error output, their versions."""

from __future__ import annotations

from pathlib import Path

import pytest
from aether_cli.build import meaningful_tail
from aether_cli.package_managers import (
    PackageManager,
    PackageManagerError,
    _unpinned_version,
    target_configuration,
    yaml_list,
    yaml_scalar,
)


def test_yaml_scalars_and_lists_as_these_tools_write_them() -> None:
    text = (
        "# comment\nnodeLinker: 'node-modules'\nyarnPath: .yarn/releases/yarn-4.18.1.cjs\n"
        "packages:\n  - 'apps/*'\n  # a comment\n  - \"packages/*\"\nonlyBuiltDependencies: [esbuild, sharp]\n"
    )
    assert yaml_scalar(text, "nodeLinker") == "node-modules"
    assert yaml_scalar(text, "yarnPath") == ".yarn/releases/yarn-4.18.1.cjs"
    assert yaml_scalar(text, "missing") is None
    assert yaml_list(text, "packages") == ["apps/*", "packages/*"]
    assert yaml_list(text, "onlyBuiltDependencies") == ["esbuild", "sharp"]
    assert yaml_list(text, "missing") is None


@pytest.mark.parametrize(
    ("lockfile_version", "major"), [("'9.0'", "10"), ("'6.0'", "8"), ("5.4", "7")]
)
def test_an_unpinned_pnpm_is_the_major_that_wrote_the_lockfile(
    tmp_path: Path, lockfile_version: str, major: str
) -> None:
    lockfile = tmp_path / "pnpm-lock.yaml"
    lockfile.write_text(f"lockfileVersion: {lockfile_version}\n")
    assert _unpinned_version(PackageManager("pnpm", lockfile)) == major


def test_a_pnpm_lockfile_of_an_unknown_format_asks_for_a_pin(tmp_path: Path) -> None:
    lockfile = tmp_path / "pnpm-lock.yaml"
    lockfile.write_text("lockfileVersion: '42.0'\n")
    with pytest.raises(PackageManagerError, match=r"pin one in package\.json"):
        _unpinned_version(PackageManager("pnpm", lockfile))


def test_the_target_platform_goes_into_the_target_installs_own_configuration(
    tmp_path: Path,
) -> None:
    (tmp_path / "pnpm-workspace.yaml").write_text("packages:\n  - apps/*")
    target_configuration(PackageManager("pnpm", None), tmp_path, "linux/arm64")
    assert (tmp_path / "pnpm-workspace.yaml").read_text() == (
        "packages:\n  - apps/*\nsupportedArchitectures:\n  os: [linux]\n  cpu: [arm64]\n"
        "  libc: [glibc]\n"
    )
    with pytest.raises(PackageManagerError, match="sets supportedArchitectures itself"):
        target_configuration(PackageManager("pnpm", None), tmp_path, "linux/arm64")


def test_a_failed_tools_output_keeps_its_reason_and_drops_the_noise() -> None:
    npm = [
        "npm error code EUSAGE",
        "npm error",
        "npm error `npm ci` can only install packages when your package.json and lock are in sync.",
        "npm error Missing: left-pad@1.3.0 from lock file",
        "npm error",
        "npm error Clean install a project",
        "npm error",
        "npm error Usage:",
        "npm error npm ci",
        "npm error [--install-strategy <hoisted|nested|shallow|linked>]",
        "npm error A complete log of this run can be found in: /root/.npm/_logs/x.log",
    ]
    assert meaningful_tail(npm) == [
        "npm error code EUSAGE",
        "npm error `npm ci` can only install packages when your package.json and lock are in sync.",
        "npm error Missing: left-pad@1.3.0 from lock file",
    ]
    assert meaningful_tail([f"line {i}" for i in range(40)]) == [f"line {i}" for i in range(28, 40)]


def _fake_tool(bin_dir: Path, script: Path, version: str, calls: Path) -> None:
    """``npm`` on PATH: a link to a script that says ``version`` and counts its runs."""
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(f"#!/bin/sh\necho run >> {calls}\necho {version}\n")
    script.chmod(0o755)
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "npm").unlink(missing_ok=True)
    (bin_dir / "npm").symlink_to(script)


@pytest.mark.parametrize(
    ("where", "remembered"),
    [("lib/node_modules/npm/bin/npm-cli.js", True), ("shims/npm", False)],
    ids=["npm's own script", "a shim that may pick by project"],
)
def test_a_tools_version_is_asked_once_per_install_of_it(
    tmp_path: Path, where: str, remembered: bool
) -> None:
    from aether_cli.package_managers import find_tool

    calls, bin_dir, cache = tmp_path / "calls", tmp_path / "bin", tmp_path / "cache"
    script = tmp_path / where
    _fake_tool(bin_dir, script, "10.9.2", calls)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    npm = PackageManager("npm", None)

    def version() -> str:
        return find_tool(npm, tmp_path, env=env, cache_dir=cache, log=print).version

    assert [version(), version()] == ["10.9.2", "10.9.2"]
    assert calls.read_text().count("run") == (1 if remembered else 2)

    _fake_tool(bin_dir, script, "11.0.0", calls)  # upgraded in place: another file
    assert version() == "11.0.0"
