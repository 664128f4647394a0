"""Packing entries into a deterministic ``app.tar.gz`` and its manifest.

The archive format, fixed so that the same tree gives the same bytes on every machine:

* POSIX pax/ustar entries (:mod:`aether_cli.tar_format`), sorted byte-wise by path
  (UTF-8), no ``./`` prefix, directories end with ``/``; no entry for the root itself.
* mtime 0 (the epoch, as ``tar --mtime=@0``), uid/gid 0, empty uname/gname.
* Modes: directories 0755, files 0755 when any exec bit is set else 0644,
  symlinks 0777. Set-id and sticky bits are dropped.
* gzip: one member, deflate level 6 in fixed 256 KiB blocks (see pgzip), header
  without name, mtime 0, OS byte 255.

What goes in is decided elsewhere: :mod:`aether_cli.tree` walks a directory,
:mod:`aether_cli.artifact_tree` picks an app's files and production dependencies
out of its build. The manifest is written beside the archive, not in it, so the
digest depends on the app alone.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from aether_cli.atomic import atomic_write
from aether_cli.ignore import IgnoreRules
from aether_cli.pgzip import BLOCK_SIZE, ParallelGzipWriter
from aether_cli.tar_format import padding, tar_header
from aether_cli.tree import Entry, Skipped, collect_entries

ARTIFACT_NAME = "app.tar.gz"
MANIFEST_NAME = "manifest.json"
PACK_STAMP_NAME = "pack-stamp.json"
# Bump when the archive format changes: an old stamp must not vouch for new bytes.
_PACK_FORMAT = 1
MANIFEST_SCHEMA = "aether.manifest/v1"

# Files up to this size are read in one call; bigger ones are streamed.
_SMALL_FILE = 1024 * 1024
_CHUNK = 1024 * 1024


class PackError(Exception):
    """The tree could not be read or the archive not written (the CLI exits 30)."""


def _no_log(message: str) -> None:
    """Default ``log``: say nothing."""


@dataclass(frozen=True)
class PackResult:
    artifact: Path
    digest: str
    size_bytes: int
    manifest: Path
    file_count: int  # regular files in the archive (not directories or symlinks)
    entry_count: int = 0  # every archive entry: files, directories and symlinks
    content_bytes: int = 0  # sum of the packed files' sizes
    reused: bool = False  # the last pack's archive, nothing having changed since


# ---------------------------------------------------------------------------
# Packing


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    kind: str
    mode: int
    size: int = 0
    sha256: str = ""
    target: str = ""

    def to_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {"path": self.path, "type": self.kind, "mode": f"{self.mode:04o}"}
        if self.kind == "file":
            item["size"] = self.size
            item["sha256"] = self.sha256
        elif self.kind == "symlink":
            item["target"] = self.target
        return item


def pack_tree(
    root: Path,
    out_dir: Path,
    *,
    log: Callable[[str], None] = _no_log,
    threads: int | None = None,
) -> PackResult:
    """Pack the whole of ``root`` (minus what .aetherignore leaves out) into ``out_dir``."""
    root = Path(root).resolve()
    out_real = Path(out_dir).resolve()
    exclude = set()
    if out_real.is_relative_to(root) and out_real != root:
        exclude.add(out_real.relative_to(root).as_posix())
    skipped = Skipped()
    entries = collect_entries(
        root, IgnoreRules.for_project(root), exclude=frozenset(exclude), skipped=skipped
    )
    skipped.report(log)
    return pack_entries(entries, out_dir, log=log, threads=threads)


def pack_entries(
    entries: list[Entry],
    out_dir: Path,
    *,
    describe: dict[str, Any] | None = None,
    log: Callable[[str], None] = _no_log,
    threads: int | None = None,
    archive_name: str = ARTIFACT_NAME,
) -> PackResult:
    """Pack ``entries`` (sorted byte-wise by path) into ``out_dir/<archive_name>``.

    ``describe`` goes into the manifest as it is (target, runtime, native addons).
    One pass: each file is read once, its bytes going to its manifest hash and to
    the tar stream; the stream is compressed in parallel and hashed as written.
    ``threads`` (default: the usable cores) never changes the output bytes. When
    neither the entries nor ``describe`` changed since the last pack here, the last
    archive is reused.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_dir = out_dir.resolve()  # results carry absolute paths
    artifact = out_dir / archive_name
    stamp = out_dir / PACK_STAMP_NAME
    tree = _tree_fingerprint(entries, describe or {})
    reused = _unchanged_pack(stamp, tree, artifact, out_dir)
    if reused is not None:
        log(
            f"nothing changed since the last pack: reusing {artifact.name}, sha256:{reused.digest[:12]}"
        )
        return reused
    stamp.unlink(missing_ok=True)
    manifest_entries: list[ManifestEntry] = []
    with _atomic_file(artifact) as raw:
        with ParallelGzipWriter(raw, threads=threads) as gz:
            for entry in entries:
                manifest_entries.append(_write_entry(gz, entry))
            # End of archive: two zero blocks, then zeros up to a 10240-byte record
            # as GNU tar and Python's tarfile do.
            tail = 1024 + (-(gz.uncompressed_size + 1024) % 10240)
            gz.write(bytes(tail))
        digest, size = gz.digest, gz.compressed_size

    files = [m for m in manifest_entries if m.kind == "file"]
    manifest = out_dir / MANIFEST_NAME
    _write_manifest(manifest, artifact.name, digest, size, manifest_entries, describe or {})
    log(
        f"packed {len(files)} files ({_human(sum(m.size for m in files))}) into {artifact.name}: "
        f"{_human(size)}, sha256:{digest[:12]}"
    )
    result = PackResult(
        artifact=artifact,
        digest=digest,
        size_bytes=size,
        manifest=manifest,
        file_count=len(files),
        entry_count=len(manifest_entries),
        content_bytes=sum(m.size for m in files),
    )
    _write_pack_stamp(stamp, tree, result)
    return result


def _tree_fingerprint(entries: list[Entry], describe: dict[str, Any]) -> str:
    """Everything about the entries that could change the archive's or manifest's bytes."""
    digest = hashlib.sha256(f"aether-pack/{_PACK_FORMAT}\n".encode())
    digest.update(json.dumps(describe, sort_keys=True).encode() + b"\n")
    for entry in entries:
        digest.update(
            f"{entry.path}\0{entry.kind}\0{entry.mode}\0{entry.size}\0{entry.target}\0"
            f"{entry.changed}\n".encode()
        )
    return digest.hexdigest()


def _unchanged_pack(stamp: Path, tree: str, artifact: Path, out_dir: Path) -> PackResult | None:
    """The last pack's result if neither the tree nor its outputs changed since."""
    try:
        recorded = json.loads(stamp.read_text(encoding="utf-8"))
        written = artifact.stat()
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict) or recorded.get("tree") != tree:
        return None
    if [written.st_size, written.st_mtime_ns] != recorded.get("artifact"):
        return None
    manifest = out_dir / MANIFEST_NAME
    if not manifest.is_file():
        return None
    return PackResult(
        artifact=artifact,
        digest=str(recorded["digest"]),
        size_bytes=written.st_size,
        manifest=manifest,
        file_count=int(recorded["file_count"]),
        entry_count=int(recorded["entry_count"]),
        content_bytes=int(recorded["content_bytes"]),
        reused=True,
    )


def _write_pack_stamp(stamp: Path, tree: str, result: PackResult) -> None:
    written = result.artifact.stat()
    record = {
        "tree": tree,
        "artifact": [written.st_size, written.st_mtime_ns],
        "digest": result.digest,
        "file_count": result.file_count,
        "entry_count": result.entry_count,
        "content_bytes": result.content_bytes,
    }
    stamp.write_text(json.dumps(record, sort_keys=True) + "\n", encoding="utf-8")


def _write_entry(gz: ParallelGzipWriter, entry: Entry) -> ManifestEntry:
    if entry.kind != "file":
        gz.write(tar_header(entry, 0))
        return ManifestEntry(entry.path, entry.kind, entry.mode, target=entry.target)
    try:
        if entry.size <= _SMALL_FILE:
            # Header written after the read, with the size actually read: a file
            # that changed since the walk is still packed consistently.
            data = _read_small_file(entry.source, entry.size)
            gz.write(tar_header(entry, len(data)) + data + padding(len(data)))
            return ManifestEntry(
                entry.path, "file", entry.mode, len(data), hashlib.sha256(data).hexdigest()
            )
        return _write_large_file(gz, entry)
    except OSError as exc:
        raise PackError(f"cannot read {entry.source}: {exc.strerror or exc}") from None


def _read_small_file(path: str, size: int) -> bytes:
    # os.read on a descriptor: thousands of small files, and a file object's
    # set-up would cost more than the read.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        parts = []
        while chunk := os.read(fd, size + 1):  # +1 to notice a file that grew
            parts.append(chunk)
    finally:
        os.close(fd)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _write_large_file(gz: ParallelGzipWriter, entry: Entry) -> ManifestEntry:
    digest = hashlib.sha256()
    remaining = entry.size
    gz.write(tar_header(entry, entry.size))
    with Path(entry.source).open("rb", buffering=0) as f:
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        while remaining:
            n = f.readinto(view[: min(remaining, _CHUNK)])
            if not n:
                break
            digest.update(view[:n])
            gz.write(view[:n])
            remaining -= n
        grew = bool(f.read(1))
    if remaining or grew:
        raise PackError(f"{entry.source} changed while it was being packed: try again")
    gz.write(padding(entry.size))
    return ManifestEntry(entry.path, "file", entry.mode, entry.size, digest.hexdigest())


@contextmanager
def _atomic_file(path: Path) -> Iterator[BinaryIO]:
    """``atomic_write``, its failures (and the block's writes') as a ``PackError``."""
    try:
        with atomic_write(path) as handle:
            yield handle
    except OSError as exc:
        raise PackError(f"cannot write {path}: {exc.strerror or exc}") from None


def _write_manifest(
    path: Path,
    name: str,
    digest: str,
    size: int,
    entries: list[ManifestEntry],
    describe: dict[str, Any],
) -> None:
    files = [e for e in entries if e.kind == "file"]
    head = {
        **describe,
        "schema": MANIFEST_SCHEMA,
        "artifact": {"name": name, "sha256": digest, "size_bytes": size},
        "file_count": len(files),
        "content_bytes": sum(e.size for e in files),
        "gzip_block_size": BLOCK_SIZE,
    }
    # One entry per line: readable and diffable, and json's C encoder stays fast
    # (indent= would switch to the pure-Python one on big trees).
    lines = ",\n".join(
        "  " + json.dumps(e.to_json(), sort_keys=True, ensure_ascii=False) for e in entries
    )
    text = json.dumps(head, sort_keys=True, ensure_ascii=False)[:-1]
    text += ', "files": [\n' + lines + ("\n" if lines else "") + "]}\n"
    with _atomic_file(path) as f:
        f.write(text.encode("utf-8"))


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
