"""The contract: its rules, the CLI's copy of them, and that nothing else defines them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from aether_cli import contract as cli_contract

from chalicelib import contract
from chalicelib.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DAY = dt.date(2026, 12, 1)


def test_the_cli_copy_of_the_rules_equals_the_servers() -> None:
    for name in (
        "APP_NAME_PATTERN",
        "DIGEST_PATTERN",
        "ENV_NAME_PATTERN",
        "RESERVED_ENV_NAMES",
        "PLATFORMS",
        "DEFAULT_PLATFORM",
        "MANIFEST_SCHEMA",
        "MAX_MANIFEST_BYTES",
        "MAX_LAYERS",
        "DEFAULT_TOKEN_DAYS",
        "MAX_TOKEN_DAYS",
        "MAX_CONFIG_VALUE_BYTES",
        "MAX_CONFIG_VARS",
        "MAX_REPLICAS",
        "MAX_COMMAND_LENGTH",
        "HOOK_SIGNATURE_PREFIX",
        "HOOK_SIGNATURE_TOLERANCE_SECONDS",
        "MAX_HOOK_URL_LENGTH",
        "ISSUED_ID_PATTERN",
    ):
        assert getattr(cli_contract, name) == getattr(contract, name), name
    assert tuple(contract.LayerRole) == cli_contract.LAYER_ROLES
    assert tuple(contract.HookEvent) == cli_contract.HOOK_EVENTS
    assert [dataclasses.astuple(line) for line in cli_contract.NODE_LINES] == [
        dataclasses.astuple(line) for line in contract.NODE_LINES
    ]


def test_runtimes_are_the_node_lines_in_support_on_the_day() -> None:
    assert contract.supported_runtimes(DAY) == ("node22", "node24", "node26")
    assert contract.supported_runtimes(dt.date(2025, 1, 1)) == ("node18", "node20", "node22")
    # A line is out of support on its end-of-life day.
    assert "node22" not in contract.supported_runtimes(dt.date(2027, 4, 30))


def test_the_default_runtime_is_the_newest_lts_line_in_support() -> None:
    assert contract.default_runtime(DAY) == "node24"  # node26 is "Current", not LTS yet
    assert contract.default_runtime(dt.date(2025, 1, 1)) == "node22"


@pytest.mark.parametrize(("runtime", "end"), [("node18", "2025-04-30"), ("node20", "2026-04-30")])
def test_an_end_of_life_runtime_is_refused_with_its_date(runtime: str, end: str) -> None:
    refusal = contract.runtime_refusal(runtime, DAY)
    assert refusal is not None
    assert f"{runtime} reached its end of life on {end}" in refusal
    assert "node22, node24, node26" in refusal


@pytest.mark.parametrize("runtime", ["node21", "node", "python3", "", "NODE24"])
def test_an_unknown_runtime_is_refused_with_the_supported_ones(runtime: str) -> None:
    assert contract.runtime_refusal(runtime, DAY) == "runtime must be one of node22, node24, node26"


def test_a_supported_runtime_is_accepted() -> None:
    assert contract.runtime_refusal("node26", DAY) is None


def test_a_platform_pins_pods_to_nodes_by_the_well_known_labels() -> None:
    assert contract.node_selector("linux/arm64") == {
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "arm64",
    }


def test_cluster_platforms_default_to_amd64_and_are_a_list() -> None:
    assert Settings.from_env({}).cluster_platforms == ("linux/amd64",)
    both = Settings.from_env({"AETHER_CLUSTER_PLATFORMS": "linux/arm64, linux/amd64"})
    assert both.cluster_platforms == ("linux/arm64", "linux/amd64")


@pytest.mark.parametrize("value", ["linux/386", "windows/amd64", "amd64", " , "])
def test_an_unknown_cluster_platform_is_a_startup_error(value: str) -> None:
    with pytest.raises(ValueError, match="AETHER_CLUSTER_PLATFORMS"):
        Settings.from_env({"AETHER_CLUSTER_PLATFORMS": value})


def test_the_layer_cache_is_off_unless_configured() -> None:
    assert Settings.from_env({}).layer_cache_dir is None
    configured = Settings.from_env({"AETHER_LAYER_CACHE_DIR": "/var/lib/aether/layers"})
    assert configured.layer_cache_dir == "/var/lib/aether/layers"


@pytest.mark.parametrize("value", ["layers", "/var/../layers", "/"])
def test_a_layer_cache_that_is_not_an_absolute_path_is_a_startup_error(value: str) -> None:
    with pytest.raises(ValueError, match="AETHER_LAYER_CACHE_DIR"):
        Settings.from_env({"AETHER_LAYER_CACHE_DIR": value})


# Each rule's literal text, which must appear in chalicelib only in contract.py.
_RULE_LITERALS = {
    "app name pattern": "[-a-z0-9]{0,61}",
    "digest pattern": "[0-9a-f]{64}",
    "env name pattern": "[A-Za-z_][A-Za-z0-9_]*",
    "runtime list": "node2",
    "start command": "npm start",
    "platform": "linux/amd64",
}


def test_no_other_control_plane_module_defines_a_rule_of_the_contract() -> None:
    sources = [ROOT / "app.py", *sorted((ROOT / "chalicelib").glob("*.py"))]
    copies = [
        f"{path.relative_to(ROOT)}: {rule}"
        for path in sources
        if path.name != "contract.py"
        for rule, literal in _RULE_LITERALS.items()
        if literal in path.read_text()
    ]
    assert copies == []
