"""Time as the API server writes it: UTC, RFC 3339."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """Object timestamps (``metav1.Time``) have whole-second precision."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_time_nano(moment: datetime) -> str:
    """Log timestamps as the kubelet writes them: Go's RFC3339Nano, trailing zeros trimmed."""
    utc = moment.astimezone(UTC)
    fraction = f"{utc.microsecond:06d}000".rstrip("0")
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def parse_time(text: str) -> datetime:
    """Accept the RFC 3339 forms clients send: ``Z`` or an offset, with or without fraction."""
    normalized = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if "." in normalized:
        # datetime only takes microseconds; RFC 3339 allows nanoseconds.
        head, _, rest = normalized.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :]
        normalized = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    moment = datetime.fromisoformat(normalized)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment
