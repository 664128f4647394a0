"""Packing a project into a deterministic ``app.tar.gz``, its manifest and its SBOM.

The archive format (DESIGN §4), fixed so that the same tree gives the same bytes:

* POSIX pax/ustar entries, sorted byte-wise by path (UTF-8), no ``./`` prefix,
  directories end with ``/``; no entry for the root itself.
* mtime 0 (the epoch, as ``tar --mtime=@0``), uid/gid 0, empty uname/gname.
* Modes: directories 0755, files 0755 when any exec bit is set else 0644,
  symlinks 0777. Set-id and sticky bits are dropped.
* Symlinks stay symlinks when they resolve inside the project; absolute links and
  links that leave the project are left out with a warning, as are devices,
  FIFOs, sockets and names that are not valid UTF-8. Hard links become files.
* gzip: one member, deflate level 6 in fixed 256 KiB blocks (see pgzip), header
  without name, mtime 0, OS byte 255.

Left out: ``.git`` and ``.aether`` anywhere (always), the output directory,
Aether's install stamp, and by default ``.aetherignore`` itself and ``.env`` /
``.env.*`` files (with a warning; ``!.env.example`` in ``.aetherignore`` brings
one back). ``node_modules`` is packed: it is the point.

The manifest and the SBOM are written beside the archive, not in it, so the
digest depends on the app alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import stat
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from aether_cli.pgzip import BLOCK_SIZE, ParallelGzipWriter
from aether_cli.project import INSTALL_STAMP_NAME, NodeProject

ARTIFACT_NAME = "app.tar.gz"
MANIFEST_NAME = "manifest.json"
SBOM_NAME = "sbom.json"
PACK_STAMP_NAME = "pack-stamp.json"
# Bump when the archive format changes: an old stamp must not vouch for new bytes.
_PACK_FORMAT = 1
IGNORE_FILE = ".aetherignore"
MANIFEST_SCHEMA = "aether.manifest/v1"

# Names left out wherever they appear, whatever .aetherignore says.
_ALWAYS_EXCLUDED_NAMES = frozenset({".git", ".aether"})
# Defaults that .aetherignore may override with "!pattern"; (pattern, tag).
_DEFAULT_RULES = (("/.aetherignore", None), (".env", "env"), (".env.*", "env"))

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
    sbom: Path | None
    file_count: int  # regular files in the archive (not directories or symlinks)
    entry_count: int = 0  # every archive entry: files, directories and symlinks
    content_bytes: int = 0  # sum of the packed files' sizes


# ---------------------------------------------------------------------------
# .aetherignore: gitignore-style patterns


@dataclass(frozen=True)
class IgnoreRule:
    pattern: str
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool
    tag: str | None = None


class IgnoreRules:
    """An ordered list of gitignore-style rules; the last one that matches decides.

    Supported: ``#`` comments, blank lines, ``!`` negation, trailing ``/`` for
    directories only, a leading or inner ``/`` anchoring to the project root,
    ``*``, ``?``, ``[...]``, ``**`` (leading ``**/``, trailing ``/**``, inner
    ``/**/``) and ``\\`` escapes. As in git, a file cannot be re-included when a
    directory above it is excluded (the walk never enters that directory). Only
    the ``.aetherignore`` at the project root is read.
    """

    def __init__(self, rules: list[IgnoreRule]) -> None:
        self.rules = rules
        # Most paths match no rule: one combined regex answers that in one go.
        self._any = re.compile(
            "|".join(f"(?:{rule.regex.pattern})" for rule in rules) or "(?!)", re.DOTALL
        )

    @classmethod
    def parse(cls, text: str, *, tag: str | None = None) -> IgnoreRules:
        rules = []
        for line in text.splitlines():
            rule = parse_ignore_line(line, tag=tag)
            if rule is not None:
                rules.append(rule)
        return cls(rules)

    @classmethod
    def for_project(cls, root: Path) -> IgnoreRules:
        rules = [r for p, tag in _DEFAULT_RULES if (r := parse_ignore_line(p, tag=tag))]
        try:
            text = (root / IGNORE_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        except (OSError, UnicodeDecodeError) as exc:
            raise PackError(f"cannot read {root / IGNORE_FILE}: {exc}") from None
        return cls(rules + cls.parse(text).rules)

    def match(self, path: str, *, is_dir: bool) -> IgnoreRule | None:
        """The rule that decides about ``path`` (relative, ``/``-separated), if any."""
        if not self._any.fullmatch(path):
            return None
        for rule in reversed(self.rules):
            if rule.dir_only and not is_dir:
                continue
            if rule.regex.fullmatch(path):
                return rule
        return None

    def excludes(self, path: str, *, is_dir: bool) -> bool:
        rule = self.match(path, is_dir=is_dir)
        return rule is not None and not rule.negate


def parse_ignore_line(line: str, *, tag: str | None = None) -> IgnoreRule | None:
    # Trailing spaces are dropped unless escaped with a backslash, as in git.
    stripped = line.rstrip(" \t\r\n")
    if line[len(stripped) : len(stripped) + 1] == " " and stripped.endswith("\\"):
        stripped += " "
    if not stripped or stripped.startswith("#"):
        return None
    negate = stripped.startswith("!")
    if negate or stripped.startswith(("\\!", "\\#")):
        stripped = stripped[1:]
    dir_only = stripped.endswith("/") and not stripped.endswith("\\/")
    body = stripped.rstrip("/") if dir_only else stripped
    if not body:
        return None
    anchored = "/" in body
    body = body.removeprefix("/")
    regex = _glob_to_regex(body)
    if not anchored:
        regex = "(?:.*/)?" + regex
    return IgnoreRule(
        pattern=line.strip(),
        regex=re.compile(regex, re.DOTALL),
        negate=negate,
        dir_only=dir_only,
        tag=tag,
    )


def _glob_to_regex(glob: str) -> str:
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            j = i
            while j < n and glob[j] == "*":
                j += 1
            at_segment_start = i == 0 or glob[i - 1] == "/"
            if j - i >= 2 and at_segment_start and j == n:
                out.append(".*")  # "dir/**": everything inside
            elif j - i >= 2 and at_segment_start and glob[j] == "/":
                out.append("(?:.*/)?")  # "**/x", "a/**/b": zero or more directories
                j += 1
            else:
                out.append("[^/]*")  # other runs of stars are a plain "*"
            i = j
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = _class_end(glob, i)
            if end < 0:
                out.append(re.escape(c))
                i += 1
                continue
            content = glob[i + 1 : end]
            negated = content[:1] in ("!", "^")
            if negated:
                content = content[1:]
            content = content.replace("\\", "\\\\")
            out.append(f"[^/{content}]" if negated else f"[{content}]")
            i = end + 1
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _class_end(glob: str, start: int) -> int:
    j = start + 1
    if j < len(glob) and glob[j] in "!^":
        j += 1
    if j < len(glob) and glob[j] == "]":
        j += 1  # a leading "]" is a member of the class
    while j < len(glob) and glob[j] != "]":
        j += 1
    return j if j < len(glob) else -1


# ---------------------------------------------------------------------------
# Walking the tree


class Entry(NamedTuple):
    # A NamedTuple, not a dataclass: one is made per path, and tuples are cheap.
    path: str  # relative, "/"-separated, no trailing slash
    source: str  # absolute path on disk
    kind: str  # "file" | "dir" | "symlink"
    mode: int  # normalised
    size: int = 0
    target: str = ""  # symlink target, as stored
    # For files: (mtime_ns, ctime_ns, inode). Any write changes ctime, which no tool
    # sets back, so an unchanged triple means unchanged bytes (git's index relies on it).
    changed: tuple[int, int, int] = (0, 0, 0)


class _Skipped:
    """Paths left out that the user should hear about, grouped by reason."""

    def __init__(self) -> None:
        self.by_reason: dict[str, list[str]] = {}

    def add(self, reason: str, path: str) -> None:
        self.by_reason.setdefault(reason, []).append(path)

    def report(self, log: Callable[[str], None]) -> None:
        for reason, paths in self.by_reason.items():
            paths = sorted(paths)
            shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
            log(f"warning: left out {len(paths)} {reason}: {shown}")


_ENV_REASON = ".env file(s) (secrets stay on this machine; pass them with --env)"


def collect_entries(
    root: Path,
    rules: IgnoreRules,
    *,
    exclude: frozenset[str] = frozenset(),
    skipped: _Skipped | None = None,
) -> list[Entry]:
    """Every path to pack under ``root``, sorted byte-wise by UTF-8 path.

    ``exclude`` holds relative paths left out silently (output dir, stamps).
    """
    skipped = skipped if skipped is not None else _Skipped()
    root_real = os.path.realpath(root)
    entries: list[Entry] = []
    stack = [("", str(root))]
    while stack:
        rel_dir, abs_dir = stack.pop()
        try:
            scan = list(os.scandir(abs_dir))
        except OSError as exc:
            raise PackError(f"cannot list {abs_dir}: {exc.strerror or exc}") from None
        for item in scan:
            rel = f"{rel_dir}/{item.name}" if rel_dir else item.name
            if item.name in _ALWAYS_EXCLUDED_NAMES or rel in exclude:
                continue
            try:
                # d_type from the directory listing says dir or symlink without a
                # syscall; only regular files need lstat (size, exec bit).
                if item.is_dir(follow_symlinks=False):
                    fmt, st = stat.S_IFDIR, None
                elif item.is_symlink():
                    fmt, st = stat.S_IFLNK, None
                else:
                    st = item.stat(follow_symlinks=False)
                    fmt = stat.S_IFMT(st.st_mode)
            except OSError as exc:
                raise PackError(f"cannot stat {item.path}: {exc.strerror or exc}") from None
            is_dir = fmt == stat.S_IFDIR
            rule = rules.match(rel, is_dir=is_dir)
            if rule is not None and not rule.negate:
                if rule.tag == "env":
                    skipped.add(_ENV_REASON, rel)
                continue
            if not _is_utf8(rel):
                skipped.add(
                    "path(s) that are not valid UTF-8", os.fsencode(rel).decode("utf-8", "replace")
                )
                continue
            if is_dir:
                entries.append(Entry(rel, item.path, "dir", 0o755))
                stack.append((rel, item.path))
            elif fmt == stat.S_IFREG and st is not None:
                mode = 0o755 if st.st_mode & 0o111 else 0o644
                changed = (st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                entries.append(Entry(rel, item.path, "file", mode, st.st_size, changed=changed))
            elif fmt == stat.S_IFLNK:
                target = str(Path(item.path).readlink())
                problem = _symlink_problem(rel, item.path, target, root_real)
                if problem:
                    skipped.add(problem, f"{rel} -> {target}")
                elif not _is_utf8(target):
                    skipped.add("symlink(s) whose target is not valid UTF-8", rel)
                else:
                    entries.append(Entry(rel, item.path, "symlink", 0o777, target=target))
            else:
                skipped.add("special file(s) (device, FIFO or socket)", rel)
    entries.sort(key=lambda e: e.path.encode("utf-8"))
    return entries


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # surrogate-escaped bytes from a non-UTF-8 name
        return False
    return True


def _symlink_problem(rel: str, source: str, target: str, root_real: str) -> str | None:
    if target.startswith("/"):
        return "symlink(s) with an absolute target"
    # Archive paths are POSIX paths whatever the platform: posixpath, not os.path.
    lexical = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if lexical == ".." or lexical.startswith("../"):
        return "symlink(s) pointing outside the project"
    # Also resolve through the file system: "a/.." where a -> "." escapes even
    # though it looks inside.
    resolved = os.path.realpath(source)
    if resolved != root_real and not resolved.startswith(root_real + os.sep):
        return "symlink(s) pointing outside the project"
    return None


# ---------------------------------------------------------------------------
# Tar headers (POSIX ustar, with a pax extended header when a field does not fit)

_NUL = b"\0"
_REGTYPE, _DIRTYPE, _SYMTYPE, _XHDTYPE = b"0", b"5", b"2", b"x"
_MAX_OCTAL_SIZE = 8**11


def _octal(value: int, digits: int) -> bytes:
    return b"%0*o" % (digits - 1, value) + _NUL


# Bytes 257-511 never change (magic "ustar\0" "00", empty uname, gname, devmajor,
# devminor and prefix); nor do uid, gid, mtime and the checksum's placeholder.
_USTAR_TAIL = b"ustar\x0000" + bytes(64 + 16 + 155 + 12)
_FIXED_SUM = sum(_USTAR_TAIL) + sum(b"0000000\0" * 2 + b"00000000000\0" + b"        ")


def _ustar_header(name: bytes, mode: int, size: int, typeflag: bytes, linkname: bytes) -> bytes:
    # Field layout and encodings match Python's tarfile (PAX_FORMAT), so either can
    # read or reproduce the other; uid/gid/mtime are 0, names empty.
    name = name[:100]
    linkname = linkname[:100]
    mode_field = _octal(mode, 8)
    size_field = _octal(size, 12)
    # The checksum is the byte sum with its own field as spaces: add up only the
    # parts that vary (NUL padding adds nothing).
    checksum = _FIXED_SUM + sum(name) + sum(mode_field) + sum(size_field)
    checksum += typeflag[0] + sum(linkname)
    return b"".join(
        (
            name.ljust(100, _NUL),
            mode_field,
            b"0000000\0",  # uid
            b"0000000\0",  # gid
            size_field,
            b"00000000000\0",  # mtime
            b"%06o\0 " % checksum,
            typeflag,
            linkname.ljust(100, _NUL),
            _USTAR_TAIL,
        )
    )


def _pax_record(keyword: bytes, value: bytes) -> bytes:
    length = len(keyword) + len(value) + 3  # " ", "=", "\n"
    total = previous = 0
    while True:
        total = length + len(str(previous))
        if total == previous:
            break
        previous = total
    return b"%d %s=%s\n" % (total, keyword, value)


def tar_header(entry: Entry, size: int) -> bytes:
    """The header block(s) for ``entry`` holding ``size`` bytes of content."""
    name = entry.path + "/" if entry.kind == "dir" else entry.path
    typeflag = {"file": _REGTYPE, "dir": _DIRTYPE, "symlink": _SYMTYPE}[entry.kind]
    name_bytes = name.encode("utf-8")
    link_bytes = entry.target.encode("utf-8")
    records = b""
    if len(name_bytes) > 100 or not name.isascii():
        records += _pax_record(b"path", name_bytes)
        name_bytes = name.encode("ascii", "replace")
    if len(link_bytes) > 100 or not entry.target.isascii():
        records += _pax_record(b"linkpath", link_bytes)
        link_bytes = entry.target.encode("ascii", "replace")
    if size >= _MAX_OCTAL_SIZE:
        records += _pax_record(b"size", b"%d" % size)
        size_field = 0
    else:
        size_field = size
    header = _ustar_header(name_bytes, entry.mode, size_field, typeflag, link_bytes)
    if not records:
        return header
    # The same extended header Python's tarfile writes: name "././@PaxHeader".
    pax = _ustar_header(b"././@PaxHeader", 0, len(records), _XHDTYPE, b"")
    return pax + records + _padding(len(records)) + header


def _padding(size: int) -> bytes:
    return bytes(-size % 512)


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
    """Pack ``root`` into ``out_dir/app.tar.gz`` and ``out_dir/manifest.json``.

    One pass: each file is read once, its bytes going to its manifest hash and to
    the tar stream; the stream is compressed in parallel and hashed as written.
    ``threads`` (default: the usable cores) never changes the output bytes.
    """
    root = Path(root).resolve()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_dir = out_real = out_dir.resolve()  # results carry absolute paths

    exclude = {f"node_modules/{INSTALL_STAMP_NAME}", f"node_modules/{INSTALL_STAMP_NAME}.tmp"}
    if out_real.is_relative_to(root) and out_real != root:
        exclude.add(out_real.relative_to(root).as_posix())
    skipped = _Skipped()
    entries = collect_entries(
        root, IgnoreRules.for_project(root), exclude=frozenset(exclude), skipped=skipped
    )
    skipped.report(log)

    artifact = out_dir / ARTIFACT_NAME
    stamp = out_dir / PACK_STAMP_NAME
    tree = _tree_fingerprint(entries)
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
    _write_manifest(manifest, digest, size, manifest_entries)
    log(
        f"packed {len(files)} files ({_human(sum(m.size for m in files))}) into {artifact.name}: "
        f"{_human(size)}, sha256:{digest[:12]}"
    )
    result = PackResult(
        artifact=artifact,
        digest=digest,
        size_bytes=size,
        manifest=manifest,
        sbom=None,
        file_count=len(files),
        entry_count=len(manifest_entries),
        content_bytes=sum(m.size for m in files),
    )
    _write_pack_stamp(stamp, tree, result)
    return result


def _tree_fingerprint(entries: list[Entry]) -> str:
    """Everything about the walked tree that could change the archive's bytes."""
    digest = hashlib.sha256(f"aether-pack/{_PACK_FORMAT}\n".encode())
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
        sbom=None,
        file_count=int(recorded["file_count"]),
        entry_count=int(recorded["entry_count"]),
        content_bytes=int(recorded["content_bytes"]),
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


def pack_project(
    project: NodeProject,
    out_dir: Path,
    *,
    sbom: bool = True,
    log: Callable[[str], None] = _no_log,
    threads: int | None = None,
) -> PackResult:
    """Pack the project (see :func:`pack_tree`) and write its SBOM beside the archive.

    The SBOM is made while the archive is written (npm runs in its own process);
    its messages are logged once both are done, from this thread.
    """
    out_dir = Path(out_dir).resolve()
    sbom_path: Path | None = None
    sbom_logs: list[str] = []
    sbom_error: list[BaseException] = []
    worker: threading.Thread | None = None
    if sbom:
        from aether_cli.sbom import write_sbom

        out_dir.mkdir(parents=True, exist_ok=True)

        def make_sbom() -> None:
            nonlocal sbom_path
            try:
                sbom_path = write_sbom(project, out_dir / SBOM_NAME, log=sbom_logs.append)
            except BaseException as exc:  # re-raised in the caller's thread
                sbom_error.append(exc)

        worker = threading.Thread(target=make_sbom, name="aether-sbom", daemon=True)
        worker.start()
    try:
        result = pack_tree(project.root, out_dir, log=log, threads=threads)
    finally:
        if worker is not None:
            worker.join()
            for message in sbom_logs:
                log(message)
    if sbom_error:
        raise sbom_error[0]
    return PackResult(
        artifact=result.artifact,
        digest=result.digest,
        size_bytes=result.size_bytes,
        manifest=result.manifest,
        sbom=sbom_path,
        file_count=result.file_count,
        entry_count=result.entry_count,
        content_bytes=result.content_bytes,
    )


def _write_entry(gz: ParallelGzipWriter, entry: Entry) -> ManifestEntry:
    if entry.kind != "file":
        gz.write(tar_header(entry, 0))
        return ManifestEntry(entry.path, entry.kind, entry.mode, target=entry.target)
    try:
        if entry.size <= _SMALL_FILE:
            # Header written after the read, with the size actually read: a file
            # that changed since the walk is still packed consistently.
            data = _read_small_file(entry.source, entry.size)
            gz.write(tar_header(entry, len(data)) + data + _padding(len(data)))
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
    gz.write(_padding(entry.size))
    return ManifestEntry(entry.path, "file", entry.mode, entry.size, digest.hexdigest())


class _atomic_file:
    """Write to a temporary file beside ``path``; rename over it only on success."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = None
        self._tmp = Path()

    def __enter__(self) -> BinaryIO:
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        except OSError as exc:
            raise PackError(f"cannot write in {self.path.parent}: {exc.strerror or exc}") from None
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "wb")
        return self._file

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        assert self._file is not None
        try:
            self._file.close()
            if exc_type is None:
                self._tmp.chmod(0o644)  # mkstemp makes it 0600
                self._tmp.replace(self.path)
        except OSError as exc:
            raise PackError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        finally:
            self._tmp.unlink(missing_ok=True)


def _write_manifest(path: Path, digest: str, size: int, entries: list[ManifestEntry]) -> None:
    files = [e for e in entries if e.kind == "file"]
    head = {
        "schema": MANIFEST_SCHEMA,
        "artifact": {"name": ARTIFACT_NAME, "sha256": digest, "size_bytes": size},
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
