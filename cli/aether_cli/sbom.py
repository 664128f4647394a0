"""A CycloneDX 1.5 SBOM of the production dependencies, written beside the archive.

Where it comes from, in order:

1. ``npm sbom --sbom-format cyclonedx --omit dev`` (npm >= 9.5), offline. With a
   lockfile it runs with ``--package-lock-only``: after ``npm ci --omit=dev`` the
   installed tree *is* the lockfile minus dev packages, and npm refuses to describe
   the installed tree when devDependencies are declared but not installed
   (ESBOMPROBLEMS). Without a lockfile it describes ``node_modules``.
2. Otherwise, built here from ``package-lock.json`` (v2/v3 ``packages`` map), or
   from npm's hidden lockfile ``node_modules/.package-lock.json``.

The document is deterministic: no timestamp, and a serialNumber derived from a
hash of its inputs (package.json, the lockfile, the hidden lockfile), recorded as
the ``aether:inputs-sha256`` property. When that hash has not changed since the
last SBOM in the same place, the file is kept as it is and npm is not run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aether_cli import __version__
from aether_cli.project import NodeProject, ProjectError

SPEC_VERSION = "1.5"
INPUTS_PROPERTY = "aether:inputs-sha256"
SOURCE_PROPERTY = "aether:source"
_FORMAT_VERSION = "1"  # bump when the way we build or normalise the SBOM changes
_NPM_TIMEOUT = 120


def write_sbom(project: NodeProject, path: Path, *, log: Callable[[str], None]) -> Path | None:
    """Write the SBOM to ``path``; None (with a warning) when there is nothing to build it from."""
    key = sbom_inputs_key(project)
    if _existing_key(path) == key:
        log("SBOM inputs unchanged: keeping the previous sbom.json")
        return path

    bom, source = _from_npm(project, log)
    if bom is None:
        lockfile = project.lockfile
        hidden = project.root / "node_modules" / ".package-lock.json"
        for candidate in (lockfile, hidden):
            if candidate is not None and candidate.is_file():
                bom = sbom_from_lockfile(project, candidate)
                source = candidate.relative_to(project.root).as_posix()
                break
    if bom is None:
        log("warning: no SBOM: npm sbom is unavailable and there is no package-lock.json")
        return None

    bom = normalise(bom, key=key, source=source)
    component = bom["metadata"].get("component")
    if isinstance(component, dict) and project.name:
        # npm --package-lock-only names the root after its directory.
        component["name"] = project.name
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(bom, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")
    tmp.replace(path)
    return path


def sbom_inputs_key(project: NodeProject) -> str:
    digest = hashlib.sha256(f"aether-sbom/{_FORMAT_VERSION}\n".encode())
    for path in (
        project.root / "package.json",
        project.lockfile,
        project.root / "node_modules" / ".package-lock.json",
    ):
        digest.update(b"\0" + (path.name.encode() if path else b"-") + b"\0")
        try:
            digest.update(hashlib.sha256(path.read_bytes()).digest() if path else b"")
        except FileNotFoundError:
            digest.update(b"missing")
    return digest.hexdigest()


def _existing_key(path: Path) -> str | None:
    try:
        bom = json.loads(path.read_text(encoding="utf-8"))
        properties = bom["metadata"]["properties"]
        return next(p["value"] for p in properties if p["name"] == INPUTS_PROPERTY)  # type: ignore[no-any-return]
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        return None


def _from_npm(
    project: NodeProject, log: Callable[[str], None]
) -> tuple[dict[str, Any] | None, str]:
    npm = shutil.which("npm")
    if npm is None:
        return None, ""
    command = [npm, "sbom", "--sbom-format", "cyclonedx", "--omit", "dev", "--offline"]
    if project.lockfile is not None:
        command.append("--package-lock-only")
    env = {**os.environ, "NO_UPDATE_NOTIFIER": "1", "npm_config_update_notifier": "false"}
    try:
        proc = subprocess.run(
            command,
            cwd=project.root,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            env=env,
            timeout=_NPM_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log(f"npm sbom did not run ({exc}); building the SBOM from the lockfile")
        return None, ""
    if proc.returncode != 0:
        first = proc.stderr.decode("utf-8", "replace").strip().splitlines()[:2]
        log(
            f"npm sbom failed ({' / '.join(first) or proc.returncode}); "
            "building the SBOM from the lockfile"
        )
        return None, ""
    try:
        bom = json.loads(proc.stdout)
    except ValueError:
        log("npm sbom printed something that is not JSON; building the SBOM from the lockfile")
        return None, ""
    if not isinstance(bom, dict) or bom.get("bomFormat") != "CycloneDX":
        return None, ""
    return bom, "npm sbom"


def normalise(bom: dict[str, Any], *, key: str, source: str) -> dict[str, Any]:
    """Drop what changes from run to run; record where the SBOM came from."""
    bom = dict(bom)
    bom["serialNumber"] = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'aether-sbom:' + key)}"
    bom["version"] = 1
    metadata = dict(bom.get("metadata") or {})
    metadata.pop("timestamp", None)
    properties = [
        p
        for p in metadata.get("properties") or []
        if p.get("name") not in (INPUTS_PROPERTY, SOURCE_PROPERTY)
    ]
    properties += [
        {"name": INPUTS_PROPERTY, "value": key},
        {"name": SOURCE_PROPERTY, "value": source},
    ]
    metadata["properties"] = sorted(properties, key=lambda p: (p["name"], p.get("value", "")))
    bom["metadata"] = metadata
    components = bom.get("components")
    if isinstance(components, list):
        bom["components"] = sorted(components, key=_component_order)
    dependencies = bom.get("dependencies")
    if isinstance(dependencies, list):
        bom["dependencies"] = sorted(
            ({**d, "dependsOn": sorted(d.get("dependsOn", []))} for d in dependencies),
            key=lambda d: str(d.get("ref", "")),
        )
    return bom


def _component_order(component: Any) -> tuple[str, str]:
    if not isinstance(component, dict):
        return ("", "")
    return (str(component.get("bom-ref", "")), str(component.get("purl", "")))


# ---------------------------------------------------------------------------
# Building it ourselves from a lockfile


def sbom_from_lockfile(project: NodeProject, lockfile: Path) -> dict[str, Any]:
    """CycloneDX 1.5 from a v2/v3 lockfile's ``packages`` map, without dev packages.

    Optional packages are listed only when installed (platform-specific builds).
    """
    try:
        lock = json.loads(lockfile.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProjectError(f"cannot read {lockfile}: {exc}") from None
    packages = lock.get("packages") if isinstance(lock, dict) else None
    if not isinstance(packages, dict):
        raise ProjectError(
            f'{lockfile} has no "packages" map (lockfileVersion 1, npm 6): '
            "run `npm install` with npm 7 or later to upgrade it"
        )

    root_info = packages.get("", {})
    root_name = str(root_info.get("name") or project.name or project.root.name)
    root_version = str(root_info.get("version") or "0.0.0")
    root_ref = f"{root_name}@{root_version}"

    refs: dict[str, str] = {}  # lockfile path -> bom-ref
    components: dict[str, dict[str, Any]] = {}
    for location, info in packages.items():
        if not location or not isinstance(info, dict) or info.get("dev") or info.get("link"):
            continue
        if "node_modules/" not in location:
            continue  # workspace sources, not installed packages
        if info.get("optional") and not (project.root / location / "package.json").is_file():
            continue
        name = str(info.get("name") or _name_from_location(location))
        version = str(info.get("version") or "")
        ref = f"{name}@{version}"
        refs[location] = ref
        if ref not in components:
            components[ref] = _component(name, version, info)

    dependencies = [
        {"ref": root_ref, "dependsOn": sorted(_resolve_all("", root_info, packages, refs))}
    ]
    seen: set[str] = set()
    for location, ref in sorted(refs.items()):
        if ref in seen:
            continue
        seen.add(ref)
        depends = _resolve_all(location, packages[location], packages, refs)
        dependencies.append({"ref": ref, "dependsOn": sorted(depends)})

    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "version": 1,
        "metadata": {
            "lifecycles": [{"phase": "build"}],
            "tools": {
                "components": [
                    {"type": "application", "name": "aether-cli", "version": __version__}
                ]
            },
            "component": {
                "bom-ref": root_ref,
                "type": "application",
                "name": root_name,
                "version": root_version,
                "purl": _purl(root_name, root_version),
            },
        },
        "components": [components[ref] for ref in sorted(components)],
        "dependencies": dependencies,
    }


def _name_from_location(location: str) -> str:
    return location.rsplit("node_modules/", 1)[-1]


def _purl(name: str, version: str) -> str:
    # purl spec: the npm scope is the namespace, "@" percent-encoded.
    encoded = name.replace("@", "%40", 1) if name.startswith("@") else name
    return f"pkg:npm/{encoded}@{version}" if version else f"pkg:npm/{encoded}"


_HASH_ALGORITHMS = {"sha512": "SHA-512", "sha384": "SHA-384", "sha256": "SHA-256", "sha1": "SHA-1"}
_SPDX_ID = re.compile(r"[A-Za-z0-9.+-]+")


def _component(name: str, version: str, info: dict[str, Any]) -> dict[str, Any]:
    component: dict[str, Any] = {
        "bom-ref": f"{name}@{version}",
        "type": "library",
        "name": name,
        "version": version,
        "scope": "required",
        "purl": _purl(name, version),
    }
    hashes = []
    for token in str(info.get("integrity") or "").split():
        algorithm, _, b64 = token.partition("-")
        if algorithm in _HASH_ALGORITHMS and b64:
            try:
                content = base64.b64decode(b64, validate=True).hex()
            except ValueError:
                continue
            hashes.append({"alg": _HASH_ALGORITHMS[algorithm], "content": content})
    if hashes:
        component["hashes"] = hashes
    license_text = info.get("license")
    if isinstance(license_text, str) and license_text:
        if _SPDX_ID.fullmatch(license_text):
            component["licenses"] = [{"license": {"id": license_text}}]
        elif re.search(r"\b(OR|AND|WITH)\b", license_text):
            component["licenses"] = [{"expression": license_text}]
        else:
            component["licenses"] = [{"license": {"name": license_text}}]
    resolved = info.get("resolved")
    if isinstance(resolved, str) and resolved.startswith("http"):
        component["externalReferences"] = [{"type": "distribution", "url": resolved}]
    return component


def _resolve_all(
    location: str, info: dict[str, Any], packages: dict[str, Any], refs: dict[str, str]
) -> set[str]:
    names: set[str] = set()
    for field in ("dependencies", "optionalDependencies", "peerDependencies"):
        deps = info.get(field)
        if isinstance(deps, dict):
            names.update(deps)
    resolved = set()
    for name in names:
        target = _resolve(location, name, refs)
        if target is not None:
            resolved.add(target)
    return resolved


def _resolve(location: str, name: str, refs: dict[str, str]) -> str | None:
    """Node's lookup: node_modules/<name> beside ``location``, then in each parent."""
    base = location
    while True:
        candidate = f"{base}/node_modules/{name}" if base else f"node_modules/{name}"
        if candidate in refs:
            return refs[candidate]
        if not base:
            return None
        # Climb out of this package: ".../node_modules/x" -> "..." (a scope counts once).
        head, sep, _ = base.rpartition("node_modules/")
        base = head.rstrip("/") if sep else ""
