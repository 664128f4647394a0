"""The embedded identity provider's Node.js: the contract's default runtime, or a clear exit."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.local import oidc


def test_without_that_node_nor_npm_to_fetch_it_up_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # neither node nor npm
    with pytest.raises(SystemExit) as refused:
        oidc.node(cache_dir=tmp_path / "cache")
    message = str(refused.value)
    assert message.startswith(f"the identity provider needs Node.js {oidc.runtime_major()}: ")
    assert "npm" in message
    assert "\n" not in message
