"""Fixtures: the two local sites and a fresh workspace around DEST."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .sites import Site, start_site
from .workspace import Workspace


@pytest.fixture(scope="session")
def control_plane() -> Iterator[Site]:
    site = start_site()
    yield site
    site.server.shutdown()


@pytest.fixture(scope="session")
def storage() -> Iterator[Site]:
    site = start_site()
    yield site
    site.server.shutdown()


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(root=tmp_path, dest=tmp_path / "pod" / "app")
