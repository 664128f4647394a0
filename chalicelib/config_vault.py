"""Config values at rest: sealed by envelope encryption under a KMS key, opened only to apply.

A release's values are one JSON object encrypted with a fresh 256-bit data key
(XSalsa20-Poly1305, NaCl's ``SecretBox``); only the data key's KMS-encrypted copy is kept
beside it, so KMS never sees the values and its 4 KiB limit does not bound them. The app's
name is the encryption context: a sealed config copied onto another app's record does not
open.

An event hook's signing secret is sealed the same way, with the hook's id as the
encryption context (``seal_secret``): sealed config never opens as a secret, nor one
hook's secret as another's.

Telling two configurations apart (the same config patch twice is one release) needs a
fingerprint of the values. It is an HMAC that KMS computes with a key that never leaves it
(``GenerateMac``), so the records hold no plain hash against which a guessed value could be
checked.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

_SEALED_FORMAT = 1
_MAC_ALGORITHM = "HMAC_SHA_256"


class ConfigVault:
    """Seals and opens config with ``key_id``; fingerprints it with ``mac_key_id``."""

    def __init__(self, kms: Any, key_id: str, mac_key_id: str) -> None:
        self._kms = kms
        self.key_id = key_id
        self.mac_key_id = mac_key_id

    def seal(self, app_name: str, values: Mapping[str, str]) -> str | None:
        """The sealed form of ``values`` (None for no values: nothing to protect)."""
        if not values:
            return None
        return self._seal(_context(app_name), values)

    def open(self, app_name: str, sealed: str | None) -> dict[str, str]:
        if sealed is None:
            return {}
        return self._open(_context(app_name), sealed)

    def seal_secret(self, hook_id: str, secret: str) -> str:
        """A hook's signing secret, sealed as config is, bound to its subscription: sealed
        config does not open as a secret, nor one hook's secret as another's."""
        return self._seal(_hook_context(hook_id), {"secret": secret})

    def open_secret(self, hook_id: str, sealed: str) -> str:
        return self._open(_hook_context(hook_id), sealed)["secret"]

    def _seal(self, context: dict[str, str], values: Mapping[str, str]) -> str:
        from nacl.secret import SecretBox

        data_key = self._kms.generate_data_key(
            KeyId=self.key_id, KeySpec="AES_256", EncryptionContext=context
        )
        box = SecretBox(data_key["Plaintext"])
        sealed = box.encrypt(_canonical(values))
        return json.dumps(
            {
                "format": _SEALED_FORMAT,
                "key": base64.b64encode(data_key["CiphertextBlob"]).decode(),
                "box": base64.b64encode(bytes(sealed)).decode(),
            },
            separators=(",", ":"),
        )

    def _open(self, context: dict[str, str], sealed: str) -> dict[str, str]:
        from nacl.secret import SecretBox

        envelope = json.loads(sealed)
        if envelope.get("format") != _SEALED_FORMAT:
            raise ValueError("unknown sealed config format")
        data_key = self._kms.decrypt(
            # Named although the ciphertext says it: only this key may ever open config.
            KeyId=self.key_id,
            CiphertextBlob=base64.b64decode(envelope["key"]),
            EncryptionContext=context,
        )
        plain = SecretBox(data_key["Plaintext"]).decrypt(base64.b64decode(envelope["box"]))
        values = json.loads(plain)
        assert isinstance(values, dict)
        return {str(name): str(value) for name, value in values.items()}

    def fingerprint(self, app_name: str, config: Mapping[str, Any]) -> str:
        """A keyed digest of ``config`` (which holds values) for ``app_name``."""
        message = hashlib.sha256(app_name.encode() + b"\n" + _canonical(config)).digest()
        answer = self._kms.generate_mac(
            KeyId=self.mac_key_id, MacAlgorithm=_MAC_ALGORITHM, Message=message
        )
        return bytes(answer["Mac"]).hex()


def _context(app_name: str) -> dict[str, str]:
    return {"aether:app": app_name}


def _hook_context(hook_id: str) -> dict[str, str]:
    return {"aether:hook": hook_id}


def _canonical(values: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(values), sort_keys=True, separators=(",", ":")).encode()
