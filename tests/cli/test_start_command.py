"""Which file a start command runs: checked in the artifact before anything is uploaded."""

from __future__ import annotations

import pytest
from aether_cli.build import _node_script


@pytest.mark.parametrize(
    ("arguments", "script"),
    [
        (["dist/index.js"], "dist/index.js"),
        (["--enable-source-maps", "dist/main"], "dist/main"),
        (["-r", "dotenv/config", "server.js"], "server.js"),
        (["--import=tsx", "app.mjs"], "app.mjs"),
        (["-e", "process.exit(1)"], None),
        (["--print", "1+1"], None),
        ([], None),
    ],
)
def test_the_script_node_runs(arguments: list[str], script: str | None) -> None:
    assert _node_script(arguments) == script
