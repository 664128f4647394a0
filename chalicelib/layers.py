"""Layered artifacts: the manifest that names an artifact's layers, read and checked.

A manifest is canonical JSON (sorted keys, no spaces, UTF-8), so one artifact has one
digest and a verifier can refuse any other spelling of the same object (duplicate keys,
whitespace, escapes) instead of guessing which reading a signer meant::

    {"app":"shop","layers":[{"digest":"…","role":"deps","size":123},
                            {"digest":"…","role":"app","size":45}],
     "schema":"aether.artifact/v2"}

The layers are extracted in their order into one tree; each is a content-addressed
tar.gz stored as an artifact of kind ``layer`` of the same app. The signature is over
the manifest's digest, and the manifest names its app, so a signature made for one app
can never deploy another's artifact.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from chalicelib import contract
from chalicelib.contract import LayerRole

_DIGEST = re.compile(contract.DIGEST_PATTERN)
_APP_NAME = re.compile(contract.APP_NAME_PATTERN)
_KEYS = frozenset({"schema", "app", "layers"})
_LAYER_KEYS = frozenset({"role", "digest", "size"})


class MalformedManifest(ValueError):
    """The bytes are not a manifest this platform can run; the message says why."""


@dataclass(frozen=True)
class Layer:
    role: LayerRole
    digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"role": str(self.role), "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class Manifest:
    app: str | None  # None: packed without an app, deployable nowhere
    layers: tuple[Layer, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": contract.MANIFEST_SCHEMA,
            "app": self.app,
            "layers": [layer.to_json() for layer in self.layers],
        }


def canonical(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise MalformedManifest("a key appears twice")
    return dict(pairs)


def parse(data: bytes) -> Manifest:
    """The manifest in ``data``; ``MalformedManifest`` saying why it is not one."""
    if len(data) > contract.MAX_MANIFEST_BYTES:
        raise MalformedManifest(f"larger than {contract.MAX_MANIFEST_BYTES} bytes")
    try:
        document = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, RecursionError, json.JSONDecodeError) as exc:
        raise MalformedManifest(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or set(document) != _KEYS:
        raise MalformedManifest(f"must be an object with exactly {', '.join(sorted(_KEYS))}")
    if document["schema"] != contract.MANIFEST_SCHEMA:
        raise MalformedManifest(f"schema must be {contract.MANIFEST_SCHEMA}")
    app = document["app"]
    if app is not None and not (isinstance(app, str) and _APP_NAME.fullmatch(app)):
        raise MalformedManifest("app must be an application name or null")
    raw_layers = document["layers"]
    if not isinstance(raw_layers, list) or not 1 <= len(raw_layers) <= contract.MAX_LAYERS:
        raise MalformedManifest(f"layers must be a list of 1 to {contract.MAX_LAYERS} layers")
    layers = tuple(_layer(item) for item in raw_layers)
    roles = [layer.role for layer in layers]
    if len(set(roles)) != len(roles) or LayerRole.APP not in roles:
        raise MalformedManifest("layers must hold one app layer and at most one of each role")
    if len({layer.digest for layer in layers}) != len(layers):
        raise MalformedManifest("a layer is named twice")
    if canonical(document) != data:
        raise MalformedManifest("not canonical JSON (sorted keys, no spaces, UTF-8)")
    return Manifest(app, layers)


def _layer(item: Any) -> Layer:
    if not isinstance(item, dict) or set(item) != _LAYER_KEYS:
        raise MalformedManifest("each layer must be an object with exactly digest, role, size")
    role, digest, size = item["role"], item["digest"], item["size"]
    if role not in {str(r) for r in LayerRole}:
        raise MalformedManifest(f"a layer's role must be one of {', '.join(LayerRole)}")
    if not (isinstance(digest, str) and _DIGEST.fullmatch(digest)):
        raise MalformedManifest("a layer's digest must be 64 lowercase hexadecimal characters")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise MalformedManifest("a layer's size must be a positive integer")
    return Layer(LayerRole(role), digest, size)
