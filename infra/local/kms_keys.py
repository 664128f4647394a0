"""moto's KMS keys, made durable beside the records: config sealed under them stays readable.

Replaying a recorded ``CreateKey`` would mint new key material, so keys are kept as what was
generated: after every request that changed KMS (rare: creating keys and aliases), the keys
of every account and region (id, ARN, spec, usage, state, material) and their aliases are
written to ``kms.json`` (mode 0600, replaced atomically and fsynced) before the client hears
back. A start puts them straight back into moto's backend, same ids and material.

Only symmetric and HMAC keys are kept: an asymmetric key's private half has no place here,
and the control plane uses none.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

KMS_TARGET_PREFIX = "TrentService."
FILE_NAME = "kms.json"
FORMAT = 1
# Requests that only read or use keys; anything else that succeeds is written down.
USES = frozenset(
    {
        "Decrypt",
        "DescribeKey",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateMac",
        "GenerateRandom",
        "GetKeyPolicy",
        "GetKeyRotationStatus",
        "GetPublicKey",
        "ListAliases",
        "ListGrants",
        "ListKeyPolicies",
        "ListKeyRotations",
        "ListKeys",
        "ListResourceTags",
        "ReEncrypt",
        "Sign",
        "Verify",
        "VerifyMac",
    }
)
KEPT_SPECS = frozenset({"SYMMETRIC_DEFAULT", "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512"})


def changes_keys(operation: str) -> bool:
    return operation not in USES


def dump(directory: Path) -> int:
    """Write every kept key of moto's KMS to ``kms.json``; returns how many."""
    from moto.kms.models import kms_backends

    keys: list[dict[str, Any]] = []
    for account_id in list(kms_backends):
        for region in list(kms_backends[account_id]):
            backend = kms_backends[account_id][region]
            for key in list(backend.keys.values()):
                if key.key_spec not in KEPT_SPECS:
                    continue
                keys.append(
                    {
                        "account": account_id,
                        "region": region,
                        "id": key.id,
                        "arn": key.arn,
                        "created": key.creation_date,
                        "policy": key.policy,
                        "usage": key.key_usage,
                        "spec": key.key_spec,
                        "description": key.description,
                        "enabled": key.enabled,
                        "state": key.key_state,
                        "origin": key.origin,
                        "material": base64.b64encode(key.key_material).decode(),
                        "aliases": sorted(key.aliases),
                    }
                )
    path = directory / FILE_NAME
    temporary = path.with_name(f".{FILE_NAME}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"format": FORMAT, "keys": keys}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
    directory_handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_handle)
    finally:
        os.close(directory_handle)
    return len(keys)


def restore(directory: Path) -> int:
    """Put the keys of ``kms.json`` back into moto's KMS; returns how many."""
    from moto.kms.models import kms_backends

    path = directory / FILE_NAME
    if not path.exists():
        return 0
    saved = json.loads(path.read_text())
    if saved.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown format")
    for entry in saved["keys"]:
        backend = kms_backends[entry["account"]][entry["region"]]
        key = backend.create_key(
            entry["policy"], entry["usage"], entry["spec"], entry["description"], None
        )
        backend.keys.pop(key.id)
        key.id, key.arn, key.creation_date = entry["id"], entry["arn"], entry["created"]
        key.key_material = base64.b64decode(entry["material"])
        key.enabled, key.key_state, key.origin = entry["enabled"], entry["state"], entry["origin"]
        backend.keys[key.id] = key
        for alias in entry["aliases"]:
            backend.create_alias(key.id, alias)
    return len(saved["keys"])
