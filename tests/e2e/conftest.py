"""Each module of these suites runs against its own private embedded stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.local.private import PrivateStack, private_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    with private_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running
