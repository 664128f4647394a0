"""A layered artifact: the production dependencies and the app's own files, packed apart.

``node_modules`` is most of an artifact's bytes and changes only with the lockfile, the
package manager, the target platform or Node's major; the app's own files change on
every deploy. Packed apart, each into its own deterministic tar.gz (same tree, same
bytes), an unchanged dependencies layer keeps its digest: it is neither packed again
(its pack stamp vouches for it) nor uploaded again (the platform already holds it), and
a source-only change sends only the app layer.

The artifact is ``artifact.json``, a canonical JSON manifest naming the app and its
layers by SHA-256 and size, in the order they are extracted::

    {"app":"shop","layers":[{"digest":"…","role":"deps","size":…},
                            {"digest":"…","role":"app","size":…}],
     "schema":"aether.artifact/v2"}

Its SHA-256 is the artifact's digest, and what is signed: the signature covers every
layer through their digests, and the app through its name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aether_cli.atomic import write_atomic
from aether_cli.contract import LAYER_ROLES, MANIFEST_SCHEMA
from aether_cli.pack import MANIFEST_NAME, PackResult, pack_entries
from aether_cli.tree import Entry

ARTIFACT_MANIFEST_NAME = "artifact.json"
LAYER_NAME = "layer.tar.gz"
LAYERS_DIR = "layers"
DEPS, APP = LAYER_ROLES


@dataclass(frozen=True)
class LayeredArtifact:
    manifest: Path  # artifact.json: the artifact itself
    digest: str  # its SHA-256
    manifest_bytes: int
    layers: tuple[tuple[str, PackResult], ...]  # (role, packed layer), in extraction order
    describe: Path  # manifest.json: how it was built, where it runs, its layers

    @property
    def size_bytes(self) -> int:
        """Everything the platform stores for it: the manifest and every layer."""
        return self.manifest_bytes + sum(layer.size_bytes for _, layer in self.layers)

    @property
    def file_count(self) -> int:
        return sum(layer.file_count for _, layer in self.layers)

    @property
    def repacked(self) -> bool:
        """Whether a layer was packed anew (else each is the last pack's)."""
        return any(not layer.reused for _, layer in self.layers)


def is_dependency(path: str) -> bool:
    return "node_modules" in path.split("/")


def split(entries: list[Entry]) -> dict[str, list[Entry]]:
    """The entries of each layer, each list still sorted; every file, symlink and
    ``node_modules`` directory in exactly one layer.

    A directory above both (``apps/`` of a workspace whose package has its own
    ``node_modules``) goes into each layer that has something under it, so each layer
    extracts on its own; an empty directory belongs to the app.
    """
    under_deps: set[str] = set()
    under_app: set[str] = set()
    # Once per entry: this runs over every file of node_modules on each deploy.
    dependency = [is_dependency(entry.path) for entry in entries]
    for entry, in_deps in zip(entries, dependency, strict=True):
        if entry.kind == "dir" and not in_deps:
            continue
        marks = under_deps if in_deps else under_app
        parent = entry.path.rpartition("/")[0]
        while parent and parent not in marks:
            marks.add(parent)
            parent = parent.rpartition("/")[0]
    layers: dict[str, list[Entry]] = {DEPS: [], APP: []}
    for entry, in_deps in zip(entries, dependency, strict=True):
        if entry.kind != "dir" or in_deps:
            layers[DEPS if in_deps else APP].append(entry)
            continue
        if entry.path in under_deps:
            layers[DEPS].append(entry)
        if entry.path in under_app or entry.path not in under_deps:
            layers[APP].append(entry)
    return layers


def manifest_document(app: str | None, layers: list[tuple[str, PackResult]]) -> bytes:
    document = {
        "schema": MANIFEST_SCHEMA,
        "app": app,
        "layers": [
            {"role": role, "digest": packed.digest, "size": packed.size_bytes}
            for role, packed in layers
        ],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def pack_layers(
    entries: list[Entry],
    out_dir: Path,
    *,
    app: str | None,
    describe: dict[str, Any] | None = None,
    log: Callable[[str], None],
    threads: int | None = None,
) -> LayeredArtifact:
    """Pack each non-empty layer under ``out_dir/layers/<role>/`` and write the manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_dir = out_dir.resolve()
    packed: list[tuple[str, PackResult]] = []
    for role, layer_entries in split(entries).items():
        layer_dir = out_dir / LAYERS_DIR / role
        if not layer_entries and role != APP:
            # No dependencies: no layer, and none left over from an earlier pack.
            for stale in (LAYER_NAME, MANIFEST_NAME):
                (layer_dir / stale).unlink(missing_ok=True)
            continue
        result = pack_entries(
            layer_entries,
            layer_dir,
            log=_prefixed(log, f"{role} layer: "),
            threads=threads,
            archive_name=LAYER_NAME,
        )
        packed.append((role, result))
    document = manifest_document(app, packed)
    manifest = out_dir / ARTIFACT_MANIFEST_NAME
    write_atomic(manifest, document)
    describe_path = out_dir / MANIFEST_NAME
    described = {
        **(describe or {}),
        "schema": "aether.manifest/v2",
        "artifact": {
            "name": ARTIFACT_MANIFEST_NAME,
            "sha256": hashlib.sha256(document).hexdigest(),
        },
        "layers": [
            {
                "role": role,
                "path": f"{LAYERS_DIR}/{role}/{LAYER_NAME}",
                "sha256": result.digest,
                "size_bytes": result.size_bytes,
                "file_count": result.file_count,
                "files": f"{LAYERS_DIR}/{role}/{MANIFEST_NAME}",
            }
            for role, result in packed
        ],
    }
    write_atomic(describe_path, (json.dumps(described, sort_keys=True, indent=1) + "\n").encode())
    return LayeredArtifact(
        manifest=manifest,
        digest=hashlib.sha256(document).hexdigest(),
        manifest_bytes=len(document),
        layers=tuple(packed),
        describe=describe_path,
    )


def _prefixed(log: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    def say(line: str) -> None:
        log(prefix + line)

    return say
