"""A CycloneDX 1.5 SBOM of what the artifact holds, written beside the archive.

It is made from the production closure (:mod:`aether_cli.closure`), so it lists
exactly the packages that were packed, whichever package manager installed them:
name, version, purl, licence, the registry's integrity hash when npm's lockfile
records one, and the dependency graph as Node resolves it. Workspace packages the
app depends on are components too (type ``library``, no purl version source).

The document is deterministic: no timestamp, and a serialNumber derived from the
artifact's digest, recorded with the digest as properties.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aether_cli import __version__
from aether_cli.atomic import write_atomic

if TYPE_CHECKING:
    from aether_cli.build import BuildResult
    from aether_cli.closure import Package

SPEC_VERSION = "1.5"
DIGEST_PROPERTY = "aether:artifact-sha256"
PLATFORM_PROPERTY = "aether:platform"
_HASH_ALGORITHMS = {"sha512": "SHA-512", "sha384": "SHA-384", "sha256": "SHA-256", "sha1": "SHA-1"}
_SPDX_ID = re.compile(r"[A-Za-z0-9.+-]+")


def write_sbom(built: BuildResult, digest: str, path: Path) -> Path:
    bom = sbom_for(built, digest)
    write_atomic(path, json.dumps(bom, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return path


def sbom_for(built: BuildResult, digest: str) -> dict[str, Any]:
    closure = built.closure
    integrity = _npm_integrity(built.staging)
    refs = {directory: _ref(package) for directory, package in closure.packages.items()}
    components: dict[str, dict[str, Any]] = {}
    for directory, package in closure.packages.items():
        if package is closure.app:
            continue
        components.setdefault(refs[directory], _component(package, integrity.get(directory)))
    dependencies: dict[str, set[str]] = {}
    for directory, required in closure.edges.items():
        dependencies.setdefault(refs[directory], set()).update(refs[r] for r in required)
    app = closure.app
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'aether-sbom:' + digest)}",
        "version": 1,
        "metadata": {
            "lifecycles": [{"phase": "build"}],
            "tools": {
                "components": [
                    {"type": "application", "name": "aether-cli", "version": __version__}
                ]
            },
            "component": {
                "bom-ref": refs[app.directory],
                "type": "application",
                "name": app.name,
                "version": app.version or "0.0.0",
                "purl": _purl(app.name, app.version or "0.0.0"),
            },
            "properties": [
                {"name": DIGEST_PROPERTY, "value": digest},
                {"name": PLATFORM_PROPERTY, "value": built.platform},
            ],
        },
        "components": [components[ref] for ref in sorted(components)],
        "dependencies": [
            {"ref": ref, "dependsOn": sorted(depends)}
            for ref, depends in sorted(dependencies.items())
        ],
    }


def _ref(package: Package) -> str:
    return f"{package.name}@{package.version or '0.0.0'}"


def _purl(name: str, version: str) -> str:
    # purl spec: the npm scope is the namespace, "@" percent-encoded.
    encoded = name.replace("@", "%40", 1) if name.startswith("@") else name
    return f"pkg:npm/{encoded}@{version}"


def _component(package: Package, lock_entry: dict[str, Any] | None) -> dict[str, Any]:
    version = package.version or "0.0.0"
    component: dict[str, Any] = {
        "bom-ref": _ref(package),
        "type": "library",
        "name": package.name,
        "version": version,
        "scope": "required",
        "purl": _purl(package.name, version),
    }
    hashes = []
    for token in str((lock_entry or {}).get("integrity") or "").split():
        algorithm, _, b64 = token.partition("-")
        if algorithm in _HASH_ALGORITHMS and b64:
            try:
                content = base64.b64decode(b64, validate=True).hex()
            except ValueError:
                continue
            hashes.append({"alg": _HASH_ALGORITHMS[algorithm], "content": content})
    if hashes:
        component["hashes"] = hashes
    licence = _licence(package.manifest.get("license"))
    if licence is not None:
        component["licenses"] = [licence]
    resolved = (lock_entry or {}).get("resolved")
    if isinstance(resolved, str) and resolved.startswith("http"):
        component["externalReferences"] = [{"type": "distribution", "url": resolved}]
    if package.workspace:
        component["properties"] = [{"name": "aether:workspace-package", "value": "true"}]
    return component


def _licence(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):  # the old {"type": "MIT", "url": ...} form
        value = value.get("type")
    if not isinstance(value, str) or not value:
        return None
    if _SPDX_ID.fullmatch(value):
        return {"license": {"id": value}}
    if re.search(r"\b(OR|AND|WITH)\b", value):
        return {"expression": value}
    return {"license": {"name": value}}


def _npm_integrity(staging: Path) -> dict[str, dict[str, Any]]:
    """npm's lockfile entries by install location, for integrity hashes and URLs."""
    for name in ("npm-shrinkwrap.json", "package-lock.json", "node_modules/.package-lock.json"):
        try:
            lock = json.loads((staging / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        packages = lock.get("packages") if isinstance(lock, dict) else None
        if isinstance(packages, dict):
            return {k: v for k, v in packages.items() if isinstance(v, dict)}
    return {}
