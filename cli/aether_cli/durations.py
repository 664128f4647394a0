"""Durations as people type them: ``30s``, ``15m``, ``24h``, ``7d``, ``1h30m``."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNIT_SECONDS = (86400, 3600, 60, 1)


def seconds(value: str) -> int | None:
    """How many seconds ``value`` says, or None when it is not such a duration."""
    match = _DURATION.match(value.strip())
    if not value.strip() or match is None or not any(match.groups()):
        return None
    return sum(int(g or 0) * unit for g, unit in zip(match.groups(), _UNIT_SECONDS, strict=True))
