"""Check that a POST came from your Aether event hook: standard library only, to copy freely.

Every delivery carries ``X-Aether-Timestamp`` (Unix seconds) and ``X-Aether-Signature``:
``sha256=`` + the hex HMAC-SHA256, keyed with the subscription's secret (``whsec_...``, as
``aether hooks add`` printed it), of the timestamp, a ``.``, and the raw body. Verify the
bytes as received, before parsing them; a timestamp more than ``tolerance`` seconds from your
clock is refused, so a recorded delivery cannot be replayed later. A delivery may come more
than once (at least once): ``X-Aether-Delivery``, the event's id, tells repeats apart.

    from aether_cli.hook_signatures import InvalidSignature, verify

    try:
        verify(secret, body, headers["X-Aether-Timestamp"], headers["X-Aether-Signature"])
    except InvalidSignature:
        return 400
"""

from __future__ import annotations

import hashlib
import hmac
import time

from aether_cli.contract import HOOK_SIGNATURE_PREFIX, HOOK_SIGNATURE_TOLERANCE_SECONDS


class InvalidSignature(ValueError):
    """The delivery is not one the subscription's secret signed just now."""


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return HOOK_SIGNATURE_PREFIX + mac.hexdigest()


def verify(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    tolerance: int = HOOK_SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Return if ``body`` was signed with ``secret`` at ``timestamp``, within ``tolerance``
    seconds of ``now``; raise ``InvalidSignature`` saying why otherwise."""
    if not timestamp or not timestamp.isdigit():
        raise InvalidSignature("X-Aether-Timestamp is missing or not a number of seconds")
    if not signature:
        raise InvalidSignature("X-Aether-Signature is missing")
    age = (time.time() if now is None else now) - int(timestamp)
    if abs(age) > tolerance:
        raise InvalidSignature(f"the timestamp is {int(age)} s away from now (at most {tolerance})")
    if not hmac.compare_digest(signature, expected_signature(secret, timestamp, body)):
        raise InvalidSignature("the signature does not match the body")
