#!/usr/bin/env python3
"""Aether artifact fetcher: download app.tar.gz, verify its SHA-256, extract it safely.

The init container of every app pod. Standard library only.

    python fetch.py --url URL --digest SHA256HEX --dest DIR [--token TOKEN] [--format F]

Each flag may come from the environment instead; a flag wins over its variable.

    --url          AETHER_ARTIFACT_URL       http(s) URL to GET (the control plane's
                                             /artifacts/{digest}/download, which 307s to S3)
    --digest       AETHER_ARTIFACT_DIGEST    SHA-256 of the exact archive bytes, 64 hex chars
    --dest         AETHER_DEST               directory that receives the archive's contents
    --token        AETHER_PULL_TOKEN         "Authorization: Bearer" for the URL's own origin;
                                             never sent to a redirect target on another origin
    --format       AETHER_ARTIFACT_FORMAT    archive (one tar.gz, the default) or manifest: the
                                             digest is a layered artifact's JSON manifest, and
                                             each layer it names is fetched from the same URL
                                             with the layer's digest in place of the manifest's
    --cache        AETHER_LAYER_CACHE        the node's layer cache directory (manifests only):
                                             a dependencies layer found there, verified, is
                                             linked into DEST instead of downloaded (below)
    --cache-max-bytes AETHER_LAYER_CACHE_MAX_BYTES  the cache's bound; least recently
                                             used layers are evicted past it (4 GiB)
    --max-bytes    AETHER_FETCH_MAX_BYTES    download size and uncompressed tar size (2 GiB)
    --max-entries  AETHER_FETCH_MAX_ENTRIES  number of archive entries (200000)
    --max-path     AETHER_FETCH_MAX_PATH     characters in an entry's path or link target (4096)
    --max-depth    AETHER_FETCH_MAX_DEPTH    directories in an entry's path (128; at most 1024)
    --retries      AETHER_FETCH_RETRIES      retries after connection errors, timeouts,
                                             5xx, 429 and truncated bodies (4)
    --retry-delay  AETHER_FETCH_RETRY_DELAY  first backoff in seconds, doubled per retry (1.0)
    --timeout      AETHER_FETCH_TIMEOUT      socket timeout in seconds (30)

What happens to DEST
    Everything is written inside one work directory, `.<DEST name>.fetch-*` in DEST's
    parent, which is deleted on exit whatever happens. The download goes to a file there;
    the archive is extracted into a fresh staging directory there and moved into place
    only when every step succeeded:
    - DEST absent: the staging directory is renamed to DEST;
    - DEST an existing directory: its previous contents are replaced (DEST renamed aside,
      staging renamed to DEST, the old tree deleted), so a restarted pod gets a clean copy;
    - DEST a mount point (an emptyDir mounted straight at /app cannot be renamed): the
      work directory lives inside DEST, and on success DEST's previous entries are moved
      into it (then deleted) and the staged entries moved in, one rename each.
    On failure DEST is left as it was. DEST's parent must already exist.

A manifest (at most 64 KiB, canonical JSON) names 1 to 8 layers by role, SHA-256 and size;
each layer is downloaded, checked against both, and extracted into the same tree in the
manifest's order, under one set of the rules below: a directory may appear in several
layers, any other path only once.

The node's layer cache (--cache, a directory on the node that only fetchers write)
    keeps each dependencies layer extracted, by digest: `<cache>/<digest>/tree` and a stamp
    listing every entry's type, size, mode and mtime. A layer found there and matching its
    stamp is neither downloaded nor extracted: its directories and symlinks are made anew in
    the tree and its files hard-linked (cloned or copied when the cache is on another
    mount), each entry checked by the rules below against the layers before it; the other
    layers download meanwhile, on a second thread. A missing
    or mismatching entry is downloaded, extracted into a staging directory in the cache and
    renamed into place in one step (a concurrent fetcher of the same layer loses the rename
    and uses the winner's); a corrupt one is replaced. Cached files are read-only and belong
    to the fetcher's user, so an app running as another user cannot change them through its
    links; the rest of the tree is made writable by the group (the app's). Least recently
    used layers are evicted past --cache-max-bytes (a pod keeps its links). A cache this user
    cannot write is not used.

Archive rules, checked per entry before anything is written:
    only regular files, directories, symlinks and hardlinks (no sparse files); no absolute
    paths, no `..` components, no duplicate entries; symlinks must resolve inside the tree;
    hardlinks may only point to a regular file extracted earlier; nothing is written through
    a symlink. The last two keep every write inside the tree even where tarfile's `data`
    filter's realpath checks can be fooled (CVE-2025-4517, Pythons before 3.11.13). The
    second line: directories, symlinks and hardlinks still pass that filter; a regular file
    is created with O_EXCL and O_NOFOLLOW in a directory the fetcher made or found to be a
    real directory (never a symlink), with the mode the filter would give it (no setuid
    bits, no write for others); ownership is never set.
    Memory stays bounded whatever the archive says: a long-name or pax header (which
    tarfile reads whole) larger than 64 KiB plus four bytes per --max-path character is
    refused before it is read, and paths deeper than --max-depth are refused. Names in
    messages are cut to 100 characters.

Exit codes (stderr's last line is one `fetch: error: ...` line on any failure)
    0    DEST holds exactly the archive's contents
    1    internal error: a bug in the fetcher (still one line, no traceback)
    2    usage: a missing or malformed argument
    3    the server refused: HTTP 4xx (401/403 token, 404 digest), or a bad redirect
    4    the server is unreachable or failing (connection error, timeout, 5xx) after retries
    5    truncated download: fewer bytes than Content-Length announced, after retries
    6    digest mismatch: the bytes are not the artifact (or a layer: its size either) that
         was asked for
    7    not a valid gzip-compressed tar archive, or not a valid manifest
    8    unsafe archive: an entry refused by the rules above, or a size/count/path/depth/
         header limit
    9    local error: DEST unusable, disk full, permissions
    130, 143  interrupted by SIGINT, SIGTERM
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import hashlib
import http.client
import io
import json
import os
import posixpath
import queue
import re
import shutil
import signal
import stat
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, NoReturn

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_HTTP = 3
EXIT_UNAVAILABLE = 4
EXIT_TRUNCATED = 5
EXIT_DIGEST = 6
EXIT_BAD_ARCHIVE = 7
EXIT_UNSAFE = 8
EXIT_LOCAL = 9

DEFAULT_MAX_BYTES = 2 * 1024**3
DEFAULT_MAX_ENTRIES = 200_000
DEFAULT_MAX_PATH = 4096
DEFAULT_MAX_DEPTH = 128
DEPTH_CEILING = 1024  # directories in a path whatever --max-depth says: no tree needs more
DEFAULT_CACHE_MAX_BYTES = 4 * 1024**3
NAME_MAX = 255  # longest single path component on Linux filesystems
SHOWN_NAME = 100  # characters of an entry's name a message quotes
# tarfile reads these headers' data whole into memory (a long name, a set of pax records).
EXTENDED_HEADERS = frozenset(
    {
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
    }
)
CHUNK = 1024 * 1024
FORMATS = ("archive", "manifest")
MANIFEST_SCHEMA = "aether.artifact/v2"
MAX_MANIFEST_BYTES = 64 * 1024
MAX_LAYERS = 8
LAYER_ROLES = ("deps", "app")
_DIGEST = re.compile(r"[0-9a-f]{64}")


class FetchError(Exception):
    """A failure with its exit code; the message becomes the one stderr line."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Transient(FetchError):
    """A failure worth retrying (the network or the server, not the artifact)."""


def log(message: str) -> None:
    print(f"fetch: {message}", file=sys.stderr, flush=True)


def one_line(text: str) -> str:
    # Entry names and server bodies are attacker-controlled: never let them add lines.
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def shown(name: str) -> str:
    """An entry's name for a message: quoted, one line, at most SHOWN_NAME characters."""
    if len(name) <= SHOWN_NAME:
        return repr(name)
    return f"{name[:SHOWN_NAME]!r}... ({len(name)} characters)"


def redact(url: str) -> str:
    """scheme://host/path only: presigned URLs carry credentials in the query string."""
    parts = urllib.parse.urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


# ── configuration ──────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Config:
    url: str
    digest: str
    dest: Path
    token: str | None
    max_bytes: int
    max_entries: int
    max_path: int
    max_depth: int
    retries: int
    retry_delay: float
    timeout: float
    format: str = "archive"
    cache: Path | None = None  # the node's layer cache (manifests only); None: no cache
    cache_max_bytes: int = 0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise FetchError(EXIT_USAGE, message)


def parse_args(argv: Sequence[str]) -> Config:
    parser = _Parser(prog="fetch.py", description="Fetch, verify and extract an Aether artifact.")
    parser.add_argument("--url")
    parser.add_argument("--digest")
    parser.add_argument("--dest")
    parser.add_argument("--token")
    parser.add_argument("--max-bytes")
    parser.add_argument("--max-entries")
    parser.add_argument("--max-path")
    parser.add_argument("--max-depth")
    parser.add_argument("--retries")
    parser.add_argument("--retry-delay")
    parser.add_argument("--timeout")
    parser.add_argument("--format")
    parser.add_argument("--cache")
    parser.add_argument("--cache-max-bytes")
    args = parser.parse_args(argv)

    def setting(flag: str, env: str) -> str | None:
        value: str | None = getattr(args, flag.replace("-", "_"))
        return value if value is not None else os.environ.get(env)

    def required(flag: str, env: str) -> str:
        value = setting(flag, env)
        if not value:
            raise FetchError(EXIT_USAGE, f"missing --{flag} (or {env})")
        return value

    def number(flag: str, env: str, default: float, kind: type[int] | type[float]) -> float:
        raw = setting(flag, env) or str(default)
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            raise FetchError(EXIT_USAGE, f"--{flag} must be a number, got {raw!r}") from None
        if value < 0:
            raise FetchError(EXIT_USAGE, f"--{flag} must not be negative")
        return value

    url = required("url", "AETHER_ARTIFACT_URL")
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise FetchError(EXIT_USAGE, "--url must be an http or https URL")
    digest = required("digest", "AETHER_ARTIFACT_DIGEST").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise FetchError(EXIT_USAGE, "--digest must be 64 hex characters (SHA-256)")
    artifact_format = setting("format", "AETHER_ARTIFACT_FORMAT") or "archive"
    if artifact_format not in FORMATS:
        raise FetchError(EXIT_USAGE, f"--format must be one of {', '.join(FORMATS)}")
    if artifact_format == "manifest" and digest not in urllib.parse.urlsplit(url).path:
        raise FetchError(EXIT_USAGE, "--url must name the manifest's digest in its path")
    return Config(
        url=url,
        digest=digest,
        dest=Path(required("dest", "AETHER_DEST")).absolute(),
        token=setting("token", "AETHER_PULL_TOKEN") or None,
        max_bytes=int(number("max-bytes", "AETHER_FETCH_MAX_BYTES", DEFAULT_MAX_BYTES, int)),
        max_entries=int(
            number("max-entries", "AETHER_FETCH_MAX_ENTRIES", DEFAULT_MAX_ENTRIES, int)
        ),
        max_path=int(number("max-path", "AETHER_FETCH_MAX_PATH", DEFAULT_MAX_PATH, int)),
        max_depth=int(number("max-depth", "AETHER_FETCH_MAX_DEPTH", DEFAULT_MAX_DEPTH, int)),
        retries=int(number("retries", "AETHER_FETCH_RETRIES", 4, int)),
        retry_delay=number("retry-delay", "AETHER_FETCH_RETRY_DELAY", 1.0, float),
        timeout=number("timeout", "AETHER_FETCH_TIMEOUT", 30.0, float),
        format=artifact_format,
        cache=Path(cache).absolute() if (cache := setting("cache", "AETHER_LAYER_CACHE")) else None,
        cache_max_bytes=int(
            number("cache-max-bytes", "AETHER_LAYER_CACHE_MAX_BYTES", DEFAULT_CACHE_MAX_BYTES, int)
        ),
    )


# ── download ───────────────────────────────────────────────────────────────────


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urllib.parse.urlsplit(url)
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, parts.hostname, parts.port or default_port


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but keep the bearer token on the origin it was meant for.

    urllib copies every header to the redirect target; the presigned S3 URL must not see
    the pull token (a leak, and S3 refuses requests carrying two kinds of auth).
    """

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        new_scheme = urllib.parse.urlsplit(newurl).scheme
        if new_scheme not in ("http", "https"):
            raise FetchError(EXIT_HTTP, f"refused redirect to a {new_scheme!r} URL")
        if urllib.parse.urlsplit(req.full_url).scheme == "https" and new_scheme == "http":
            raise FetchError(EXIT_HTTP, f"refused redirect from https to {redact(newurl)}")
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            new.remove_header("Authorization")
        log(f"redirected ({code}) to {redact(newurl)}")
        return new


def _server_says(error: urllib.error.HTTPError) -> str:
    """The control plane's error envelope message, if the body carries one."""
    try:
        body = error.read(2048).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return ""
    match = re.search(r'"message"\s*:\s*"([^"]{1,200})"', body)
    return f": {one_line(match.group(1))}" if match else ""


def download(
    config: Config,
    into: Path,
    url: str | None = None,
    limit: int | None = None,
    cancel: threading.Event | None = None,
) -> str:
    """Stream the URL (``config.url`` by default) into a file while hashing; return the
    SHA-256 hex digest. More than ``limit`` bytes (``config.max_bytes``) is refused; a set
    ``cancel`` stops it between chunks and between attempts."""
    cancel = cancel or threading.Event()
    for attempt in range(config.retries + 1):
        try:
            return _download_once(
                config, into, url or config.url, limit or config.max_bytes, cancel
            )
        except Transient as error:
            if attempt == config.retries:
                raise
            delay = config.retry_delay * 2**attempt
            log(f"attempt {attempt + 1} failed ({error.message}); retrying in {delay:g} s")
            if cancel.wait(delay):
                break
    raise FetchError(EXIT_LOCAL, "download cancelled")


def _download_once(
    config: Config, into: Path, url: str, limit: int, cancel: threading.Event
) -> str:
    # S310: parse_args admits only http and https, and _Redirects keeps it that way.
    request = urllib.request.Request(url, headers={"Accept-Encoding": "identity"})  # noqa: S310
    request.add_header("User-Agent", "aether-fetcher/1")
    if config.token:
        request.add_header("Authorization", f"Bearer {config.token}")
    opener = urllib.request.build_opener(_Redirects())
    where = redact(url)
    log(f"GET {where}")
    started = time.monotonic()
    sha256 = hashlib.sha256()
    received = 0
    expected: int | None = None
    try:
        with opener.open(request, timeout=config.timeout) as response, into.open("wb") as out:
            announced = response.headers.get("Content-Length")
            expected = int(announced) if announced and announced.isdigit() else None
            if expected is not None and expected > limit:
                raise FetchError(EXIT_UNSAFE, f"archive too large: {expected} bytes > {limit}")
            while chunk := response.read(CHUNK):
                if cancel.is_set():
                    raise FetchError(EXIT_LOCAL, "download cancelled")
                received += len(chunk)
                if received > limit:
                    raise FetchError(EXIT_UNSAFE, f"archive too large: > {limit} bytes")
                sha256.update(chunk)
                out.write(chunk)
    except urllib.error.HTTPError as error:
        # error.url is the request that failed, which may be the redirect target.
        message = f"HTTP {error.code} from {redact(error.url)}{_server_says(error)}"
        if 300 <= error.code < 400:  # urllib would not follow it (a file: URL, a loop)
            raise FetchError(EXIT_HTTP, f"refused redirect: {message}") from None
        if error.code >= 500 or error.code == 429:
            raise Transient(EXIT_UNAVAILABLE, message) from None
        raise FetchError(EXIT_HTTP, message) from None
    except urllib.error.URLError as error:
        raise Transient(EXIT_UNAVAILABLE, f"cannot reach {where}: {error.reason}") from None
    except (http.client.HTTPException, ConnectionError, TimeoutError) as error:
        raise Transient(
            EXIT_UNAVAILABLE, f"connection to {where} failed: {type(error).__name__} {error}"
        ) from None
    if expected is not None and received < expected:
        raise Transient(EXIT_TRUNCATED, f"truncated download: got {received} of {expected} bytes")
    elapsed = time.monotonic() - started
    log(f"downloaded {received} bytes in {elapsed:.2f} s")
    return sha256.hexdigest()


# ── extraction ─────────────────────────────────────────────────────────────────


INFLATE_OUT = 1024 * 1024  # most bytes one decompress call may produce (gzip bombs)
QUEUE_CHUNKS = 8  # decompressed chunks the inflating thread may run ahead by


class _Inflated:
    """The archive's decompressed bytes, inflated by a thread ahead of the reader (zlib
    releases the GIL, so it overlaps with the writes) and refused past ``limit``.

    Forward-only: tarfile reads headers through ``read``/``tell``/``seek``, file data is
    copied straight to its descriptor. At most QUEUE_CHUNKS + 1 chunks of INFLATE_OUT bytes
    are ever held, whatever the archive says.
    """

    def __init__(self, archive: Path, limit: int) -> None:
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(QUEUE_CHUNKS)
        self._stop = threading.Event()
        self._chunk = memoryview(b"")
        self._at = 0  # within the current chunk
        self._pos = 0  # within the whole stream
        self._done = False
        self._thread = threading.Thread(
            target=self._inflate, args=(archive, limit), name="inflate", daemon=True
        )
        self._thread.start()

    def _inflate(self, archive: Path, limit: int) -> None:
        try:
            total = 0
            members = 0  # gzip members seen: a file may hold several, and zero padding
            inflater = zlib.decompressobj(wbits=31)
            inside = False
            with archive.open("rb", buffering=0) as raw:
                pending = b""
                while not self._stop.is_set():
                    if not pending:
                        pending = raw.read(CHUNK)
                        if not pending:
                            break
                    if not inside:
                        if members:  # after a member, as gzip does: zeros are padding
                            pending = pending.lstrip(b"\0")
                            if not pending:
                                continue
                        inflater = zlib.decompressobj(wbits=31)
                        inside = True
                    data = inflater.decompress(pending, INFLATE_OUT)
                    pending = inflater.unconsumed_tail
                    if inflater.eof:
                        pending, inside, members = inflater.unused_data, False, members + 1
                    if data:
                        total += len(data)
                        if total > limit:
                            raise FetchError(
                                EXIT_UNSAFE,
                                f"archive too large: more than {limit} bytes uncompressed",
                            )
                        self._put(data)
            if inside or not members:
                raise EOFError("compressed file ended before the end-of-stream marker")
            self._put(None)
        except BaseException as error:  # handed to the reader, raised there
            self._put(error)

    def _put(self, item: bytes | BaseException | None) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _more(self) -> bool:
        """The next chunk in place; False at the end of the stream."""
        if self._done:
            return False
        item = self._queue.get()
        if item is None or isinstance(item, BaseException):
            self._done = True
            if item is not None:
                raise item
            return False
        self._chunk, self._at = memoryview(item), 0
        return True

    def read(self, size: int) -> bytes:
        parts = []
        while size > 0:
            left = len(self._chunk) - self._at
            if not left:
                if not self._more():
                    break
                continue
            take = min(left, size)
            parts.append(self._chunk[self._at : self._at + take])
            self._at += take
            self._pos += take
            size -= take
        return b"".join(parts)

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET or offset < self._pos:
            raise io.UnsupportedOperation("the decompressed stream only moves forward")
        skip = offset - self._pos
        while skip:
            left = len(self._chunk) - self._at
            if not left:
                if not self._more():
                    break
                continue
            take = min(left, skip)
            self._at += take
            self._pos += take
            skip -= take
        return self._pos

    def copy_to(self, fd: int, size: int) -> None:
        """The next ``size`` bytes written to ``fd``, without copying them in between."""
        while size > 0:
            left = len(self._chunk) - self._at
            if not left:
                if not self._more():
                    raise tarfile.ReadError("unexpected end of data")
                continue
            take = min(left, size)
            view = self._chunk[self._at : self._at + take]
            while view:
                view = view[os.write(fd, view) :]
            self._at += take
            self._pos += take
            size -= take

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class _Seen:
    """What the archive has produced so far, for the rules that span entries."""

    entries: int = 0
    size: int = 0
    names: set[str] = field(default_factory=set)
    parents: set[str] = field(default_factory=set)  # directories implied by entries' paths
    files: set[str] = field(default_factory=set)
    symlinks: set[str] = field(default_factory=set)
    # Directories of the layers extracted before this one: a later layer may repeat them.
    earlier_dirs: set[str] = field(default_factory=set)
    dirs: set[str] = field(default_factory=set)

    def next_layer(self) -> None:
        self.earlier_dirs |= self.dirs
        self.dirs = set()


def _refuse(member: tarfile.TarInfo, why: str) -> NoReturn:
    raise FetchError(EXIT_UNSAFE, f"unsafe archive entry {shown(member.name)}: {why}")


def header_limit(config: Config) -> int:
    """Bytes of a long-name or pax header: room for a path and a link target of max_path
    characters (four bytes each in UTF-8) and the other records."""
    return 64 * 1024 + 4 * config.max_path


def bounded_headers(limit: int) -> type[tarfile.TarInfo]:
    """A TarInfo that refuses an extended header larger than ``limit`` before tarfile reads
    its data (whole, into memory); every header of the archive is read through it."""

    class BoundedTarInfo(tarfile.TarInfo):
        def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
            if self.type in EXTENDED_HEADERS and self.size > limit:
                long_name = self.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
                kind = "long-name" if long_name else "pax"
                raise FetchError(
                    EXIT_UNSAFE,
                    f"unsafe archive: a {kind} header of {self.size} bytes (more than {limit})",
                )
            member: tarfile.TarInfo = super()._proc_member(tar)  # type: ignore[misc]
            return member

    return BoundedTarInfo


def _escapes(name: str, link: object) -> bool:
    """Whether a symlink at ``name`` to ``link`` (relative to its directory) leaves the tree."""
    if not isinstance(link, str) or link.startswith("/"):
        return True
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), link))
    return resolved == ".." or resolved.startswith("../")


def check(member: tarfile.TarInfo, seen: _Seen, config: Config) -> str:
    """Refuse an entry that could escape the tree, exhaust the disk, or is not plain data;
    return its path relative to the tree, normalised ("." for the root)."""
    if len(member.name) > config.max_path or len(member.linkname) > config.max_path:
        _refuse(member, f"path longer than {config.max_path} characters")
    if member.name.startswith("/"):
        _refuse(member, "absolute path")
    parts = [p for p in member.name.split("/") if p not in ("", ".")]
    max_depth = min(config.max_depth, DEPTH_CEILING)
    if len(parts) > max_depth or member.linkname.count("/") >= max_depth:
        _refuse(member, f"deeper than {max_depth} directories")
    if ".." in parts:
        _refuse(member, "'..' in path")
    if any(len(p.encode("utf-8", "surrogateescape")) > NAME_MAX for p in parts):
        _refuse(member, f"path component longer than {NAME_MAX} bytes")
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        _refuse(member, "not a regular file, directory or link (device or FIFO)")
    if member.type == tarfile.GNUTYPE_SPARSE or member.sparse is not None:
        _refuse(member, "a sparse file")  # its data is not its contents: never written as is
    name = "/".join(parts) or "."
    if name == "." and not member.isdir():
        _refuse(member, "the archive root must be a directory")
    kind = "d" if member.isdir() else "l" if member.issym() else "f" if member.isreg() else "h"
    admit(seen, name, kind, member.size, config)
    if member.issym():
        if member.linkname.startswith("/"):
            _refuse(member, "symlink to an absolute path")
        if _escapes(name, member.linkname):
            _refuse(member, f"symlink points outside the tree ({member.linkname!r})")
    if member.islnk():
        target = [p for p in member.linkname.split("/") if p not in ("", ".")]
        if member.linkname.startswith("/") or "/".join(target) not in seen.files:
            _refuse(member, "hardlink target is not a regular file earlier in the archive")
    return name


def admit(seen: _Seen, name: str, kind: str, size: int, config: Config) -> None:
    """The rules that span entries, for one entry (``kind``: d, f, l, or h for a hardlink)
    of a normalised ``name``: counts and sizes within their bounds, no duplicates, nothing
    through a symlink; then record it."""
    seen.entries += 1
    if seen.entries > config.max_entries:
        raise FetchError(EXIT_UNSAFE, f"too many entries: more than {config.max_entries}")
    is_dir = kind == "d"
    repeated_dir = is_dir and name in seen.earlier_dirs and name not in seen.dirs
    if (name in seen.names and not repeated_dir) or (name in seen.parents and not is_dir):
        raise FetchError(EXIT_UNSAFE, f"unsafe archive entry {shown(name)}: duplicate entry")
    # The directories the path implies, deepest first, until one already known: each is
    # checked against the symlinks once, when it first appears (a symlink admitted later at
    # a known directory's path is a duplicate, above), so a file never goes through one.
    parent = name.rpartition("/")[0]
    while parent and parent not in seen.parents:
        if parent in seen.symlinks:
            raise FetchError(
                EXIT_UNSAFE, f"unsafe archive entry {shown(name)}: path goes through a symlink"
            )
        seen.parents.add(parent)
        parent = parent.rpartition("/")[0]
    if kind == "l":
        seen.symlinks.add(name)
    elif kind == "f":
        seen.size += size
        if seen.size > config.max_bytes:
            raise FetchError(
                EXIT_UNSAFE, f"archive too large: more than {config.max_bytes} bytes uncompressed"
            )
        seen.files.add(name)
    elif is_dir:
        seen.dirs.add(name)
    seen.names.add(name)


def _group_writable(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
    """tarfile's data filter, then the owner's read and write bits given to the group too."""
    filtered = tarfile.data_filter(member, path)
    if filtered is None or filtered.mode is None or filtered.issym():
        return filtered
    return filtered.replace(mode=filtered.mode | (filtered.mode & 0o600) >> 3, deep=False)


def _file_mode(mode: int, group_writable: bool) -> int:
    """A regular file's mode as tarfile's data filter leaves it (no high bits, no write for
    group and others, read and write for the owner, execute only if the owner had it), then
    the group's write bit as ``_group_writable`` adds it."""
    mode &= 0o755
    if not mode & 0o100:
        mode &= ~0o111
    mode |= 0o600
    return mode | (mode & 0o600) >> 3 if group_writable else mode


class _Writer:
    """Writes checked entries into the tree.

    Regular files (nearly every entry) are written here without tarfile's per-member
    machinery: created with O_EXCL and O_NOFOLLOW (never through or over anything on disk),
    in a directory this writer made or found to be a real one (never a symlink), which keeps
    each write inside the tree without resolving its path; their mode is the data filter's.
    Directories, symlinks and hardlinks still go through the data filter itself first.
    """

    def __init__(self, root: str, group_writable: bool) -> None:
        self.root = root
        self.group_writable = group_writable
        self.filter = _group_writable if group_writable else tarfile.data_filter
        self.real_dirs: set[str] = {"."}  # relative paths known to be directories, not links
        self.dir_times: list[tuple[str, float]] = []
        self.umask = os.umask(0o022)
        os.umask(self.umask)

    def write(self, member: tarfile.TarInfo, name: str, data: _Inflated) -> None:
        if member.isreg():
            self._parents(member, name)
            mode = _file_mode(member.mode, self.group_writable)
            fd = self._create(member, name, mode)
            try:
                data.copy_to(fd, member.size)
                if mode & ~self.umask != mode:
                    os.fchmod(fd, mode)
                os.utime(fd, (member.mtime, member.mtime))
            finally:
                os.close(fd)
            return
        filtered = self.filter(member, self.root)
        if filtered is None:
            return
        path = self._path(name)
        if filtered.isdir():
            if name != ".":
                self._parents(member, name)
                self._directory(member, name)
            self.dir_times.append((name, filtered.mtime))
            return
        self._parents(member, name)
        try:
            if filtered.issym():
                os.symlink(filtered.linkname, path)  # noqa: PTH211  # str paths: no Path per entry
                return
            target = "/".join(p for p in filtered.linkname.split("/") if p not in ("", "."))
            os.link(self._path(target), path, follow_symlinks=False)
        except FileExistsError:
            _refuse(member, "something is already at its path on disk")
        if filtered.mode is not None:
            os.chmod(path, filtered.mode)  # noqa: PTH101
        os.utime(path, (filtered.mtime, filtered.mtime))

    def finish(self) -> None:
        """Directories' times last (writing into one changes its mtime), deepest first."""
        for name, mtime in sorted(self.dir_times, reverse=True):
            os.utime(self._path(name), (mtime, mtime))

    def _path(self, name: str) -> str:
        return self.root if name == "." else f"{self.root}/{name}"

    def _create(self, member: tarfile.TarInfo, name: str, mode: int) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(self._path(name), flags, mode)
        except FileExistsError:
            _refuse(member, "something is already at its path on disk")

    def _parents(self, member: tarfile.TarInfo, name: str) -> None:
        parent = name.rpartition("/")[0] or "."
        if parent in self.real_dirs:
            return
        parts = parent.split("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if prefix not in self.real_dirs:
                self._directory(member, prefix)

    def _directory(self, member: tarfile.TarInfo, name: str) -> None:
        path = self._path(name)
        try:
            os.mkdir(path)  # noqa: PTH102
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                _refuse(member, f"{shown(name)} is not a directory on disk")
        else:
            # Explicit, whatever the umask: when the fetcher is another user than the app
            # (a node cache), a 0700 directory would hide the app's own files from it.
            os.chmod(path, 0o775 if self.group_writable else 0o755)  # noqa: PTH101
        self.real_dirs.add(name)


def extract(
    archive: Path,
    tree: Path,
    config: Config,
    seen: _Seen | None = None,
    *,
    group_writable: bool = False,
) -> None:
    """Extract into `tree` (fresh, empty, or holding the earlier layers `seen` describes),
    entry by entry, checking each first. ``group_writable``: what the owner may write, the
    group may too (the app's group, when another user fetches)."""
    started = time.monotonic()
    seen = seen if seen is not None else _Seen()
    first_entry, first_size = seen.entries, seen.size
    writer = _Writer(str(tree), group_writable)
    data = _Inflated(archive, config.max_bytes)
    try:
        # tarfile parses the headers (pax and long names too, each bounded before it is
        # read) over the one forward pass of the decompressed stream; _Writer does the rest.
        with tarfile.TarFile(
            fileobj=data,  # type: ignore[arg-type]  # read, tell and a forward seek suffice
            mode="r",
            errorlevel=2,
            tarinfo=bounded_headers(header_limit(config)),
        ) as tar:
            while (member := tar.next()) is not None:
                writer.write(member, check(member, seen, config), data)
        writer.finish()
    except FetchError:
        raise
    except tarfile.FilterError as error:
        raise FetchError(EXIT_UNSAFE, f"unsafe archive: {one_line(str(error))[:300]}") from None
    except (RecursionError, MemoryError):
        raise FetchError(EXIT_UNSAFE, "unsafe archive: too deep or too large to extract") from None
    except (tarfile.ReadError, tarfile.CompressionError, EOFError, zlib.error):
        raise FetchError(EXIT_BAD_ARCHIVE, "not a valid gzip-compressed tar archive") from None
    except (tarfile.TarError, OSError) as error:
        raise FetchError(EXIT_LOCAL, f"extraction failed: {one_line(str(error))[:300]}") from None
    finally:
        data.close()
    elapsed = time.monotonic() - started
    entries, size = seen.entries - first_entry, seen.size - first_size
    log(f"extracted {entries} entries ({size} bytes) in {elapsed:.2f} s")


# ── layered artifacts ──────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Layer:
    role: str
    digest: str
    size: int


def read_manifest(path: Path) -> list[Layer]:
    """The layers a manifest names, in the order they are extracted; refuses anything else."""
    data = path.read_bytes()
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, RecursionError, ValueError):
        raise FetchError(EXIT_BAD_ARCHIVE, "not a valid manifest: not JSON") from None
    if not isinstance(document, dict) or document.get("schema") != MANIFEST_SCHEMA:
        raise FetchError(EXIT_BAD_ARCHIVE, f"not a valid manifest: schema is not {MANIFEST_SCHEMA}")
    items = document.get("layers")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_LAYERS:
        raise FetchError(EXIT_BAD_ARCHIVE, f"not a valid manifest: 1 to {MAX_LAYERS} layers")
    layers = []
    for item in items:
        role = item.get("role") if isinstance(item, dict) else None
        digest = item.get("digest") if isinstance(item, dict) else None
        size = item.get("size") if isinstance(item, dict) else None
        if (
            role not in LAYER_ROLES
            or not isinstance(digest, str)
            or not _DIGEST.fullmatch(digest)
            or isinstance(size, bool)
            or not isinstance(size, int)
            or size < 1
        ):
            raise FetchError(EXIT_BAD_ARCHIVE, "not a valid manifest: a malformed layer")
        layers.append(Layer(role, digest, size))
    if len({layer.role for layer in layers}) != len(layers):
        raise FetchError(EXIT_BAD_ARCHIVE, "not a valid manifest: a role appears twice")
    return layers


def layer_url(config: Config, digest: str) -> str:
    """The manifest's URL with the layer's digest in place of the manifest's (last in the path)."""
    parts = urllib.parse.urlsplit(config.url)
    head, _, tail = parts.path.rpartition(config.digest)
    return urllib.parse.urlunsplit(parts._replace(path=f"{head}{digest}{tail}"))


def download_layer(
    config: Config, work: Path, layer: Layer, cancel: threading.Event | None = None
) -> Path:
    """The layer's archive in the work directory, checked against its digest and size."""
    archive = work / f"{layer.role}.tar.gz"
    actual = download(config, archive, url=layer_url(config, layer.digest), cancel=cancel)
    if actual != layer.digest:
        raise FetchError(
            EXIT_DIGEST,
            f"digest mismatch in the {layer.role} layer: expected {layer.digest}, got {actual}",
        )
    if archive.stat().st_size != layer.size:
        raise FetchError(
            EXIT_DIGEST,
            f"size mismatch in the {layer.role} layer: the manifest says {layer.size} "
            f"bytes, got {archive.stat().st_size}",
        )
    log(f"{layer.role} layer ok")
    return archive


def fetch_layers(config: Config, work: Path, tree: Path, *, use_cache: bool = True) -> None:
    """Download the manifest, then each layer it names, verified, into one tree; a cached
    layer is linked from the node's cache instead (and a fetched one cached first).

    When a layer is in the cache, the others download on a second thread while it is
    linked (one at a time, in the manifest's order); without one, each downloads in turn."""
    manifest = work / "artifact.json"
    actual = download(config, manifest, limit=MAX_MANIFEST_BYTES)
    if actual != config.digest:
        raise FetchError(EXIT_DIGEST, f"digest mismatch: expected {config.digest}, got {actual}")
    cache = LayerCache.open(config) if use_cache else None
    # Another user than the app fetches when there is a cache (so that the app cannot write
    # through the links): the app's group gets the write access its user had.
    group_writable = config.cache is not None
    layers = read_manifest(manifest)
    cached: dict[str, CacheEntry] = {}
    for layer in layers:
        entry = cache.lookup(layer) if cache is not None and layer.role in CACHED_ROLES else None
        if entry is not None:
            cached[layer.digest] = entry
    missing = [layer for layer in layers if layer.digest not in cached]
    ahead = _Prefetch(config, work, missing) if cached and missing else None
    seen = _Seen()
    try:
        for layer in layers:
            entry = cached.get(layer.digest)
            if entry is None:
                archive = ahead.take(layer) if ahead else download_layer(config, work, layer)
                if cache is not None and layer.role in CACHED_ROLES:
                    entry = cache.add(layer, archive, config)
                if entry is None:
                    extract(archive, tree, config, seen, group_writable=group_writable)
                archive.unlink()
            if entry is not None:
                link_layer(entry, tree, seen, config)
                cached[layer.digest] = entry
            seen.next_layer()
    finally:
        if ahead is not None:
            ahead.close()
    if cache is not None:
        cache.evict(keep=set(cached))


class _Prefetch:
    """Layers downloading in order on one worker thread; ``take`` waits for one (and raises
    what its download raised), ``close`` cancels what is left and waits for the worker, so
    nothing writes into the work directory once the fetch is over."""

    def __init__(self, config: Config, work: Path, layers: list[Layer]) -> None:
        self._cancel = threading.Event()
        self._done = {layer.digest: threading.Event() for layer in layers}
        self._results: dict[str, Path | BaseException] = {}
        self._worker = threading.Thread(
            target=self._run, args=(config, work, layers), name="prefetch", daemon=True
        )
        self._worker.start()

    def _run(self, config: Config, work: Path, layers: list[Layer]) -> None:
        for layer in layers:
            try:
                self._results[layer.digest] = download_layer(config, work, layer, self._cancel)
            except BaseException as error:  # handed to the main thread by ``take``
                self._results[layer.digest] = error
            self._done[layer.digest].set()

    def take(self, layer: Layer) -> Path:
        self._done[layer.digest].wait()
        result = self._results[layer.digest]
        if isinstance(result, BaseException):
            raise result
        return result

    def close(self) -> None:
        self._cancel.set()
        self._worker.join()


# ── the node's layer cache ─────────────────────────────────────────────────────
#
# <cache>/<digest>/tree       a layer extracted (files read-only), under the same rules
# <cache>/<digest>/stamp.jsonl  a header (schema, digest, entries, bytes), then one line per
#                             entry: [path, kind (d, f or l), size or link target, mode, mtime]
# <cache>/.staging-*          a layer being cached; renamed to <digest> only when complete
# <cache>/.trash-*            an entry being removed (corrupt, or evicted)
#
# An entry appears by one rename of a complete directory, so no fetcher ever sees half of
# one; two fetchers caching the same layer race on that rename and the loser uses the
# winner's. Before reuse every entry's type, size, mode and mtime (and every link target) is
# checked against the stamp; on any difference the entry is replaced. Files are linked into
# the pod's tree, so an eviction never touches a running pod (its links keep the data), and
# they are read-only and owned by the fetcher's user, which the app is not: the app can
# read them, never write, chmod or replace them.

STAMP = "stamp.jsonl"
CACHE_SCHEMA = "aether.layer-cache/v1"
CACHED_ROLES = ("deps",)  # the app layer changes with nearly every deployment
STALE_SECONDS = 3600  # a staging directory untouched this long is a crashed fetcher's
FICLONE = 0x40049409  # ioctl: a copy-on-write clone of a whole file (btrfs, XFS)
LINK_FALLBACK = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP})
# Threads that recreate a cached layer: its mkdir and link calls wait on the filesystem, so
# a second thread takes about a third off (14,000 entries: 0.17 → 0.11 s); on two cores a
# third or fourth adds nothing.
LINK_THREADS = 2

StampEntry = tuple[str, str, int | str, int, int]
_STAMP_TYPES = {"d": stat.S_IFDIR, "f": stat.S_IFREG}  # a stamp's kinds other than symlinks


class CacheGone(Exception):
    """A cache entry disappeared (evicted by another fetcher) while it was being linked."""


class _Corrupt(Exception):
    """A cache entry that does not match its stamp; the message says where."""


@dataclass(frozen=True)
class CacheEntry:
    digest: str
    path: Path
    entries: list[StampEntry]

    @property
    def tree(self) -> Path:
        return self.path / "tree"


@dataclass(frozen=True)
class LayerCache:
    root: Path
    max_bytes: int

    @classmethod
    def open(cls, config: Config) -> LayerCache | None:
        """The cache, or None (said once) when there is none or this user cannot use it."""
        if config.cache is None:
            return None
        if not config.cache.is_dir() or not os.access(config.cache, os.W_OK | os.X_OK):
            log(f"layer cache {config.cache} is not a directory this user may write; not used")
            return None
        return cls(config.cache, config.cache_max_bytes)

    def lookup(self, layer: Layer) -> CacheEntry | None:
        path = self.root / layer.digest
        if not os.path.lexists(path):
            return None
        started = time.monotonic()
        try:
            entry = _verified(path, layer.digest)
        except _Corrupt as why:
            log(f"cached {layer.role} layer {layer.digest[:12]} is corrupt ({why}); replacing it")
            self._discard(path)
            return None
        with _suppress_os_errors():
            os.utime(path)  # most recently used: evicted last
        elapsed = time.monotonic() - started
        log(
            f"{layer.role} layer {layer.digest[:12]} is in the node's cache "
            f"({len(entry.entries)} entries verified in {elapsed:.2f} s)"
        )
        return entry

    def add(self, layer: Layer, archive: Path, config: Config) -> CacheEntry | None:
        """Extract the layer into the cache; None (said why) if it cannot be cached here."""
        staging: Path | None = None
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".staging-{layer.digest[:16]}-", dir=self.root))
            (staging / "tree").mkdir()
            extract(archive, staging / "tree", config)
            entries = _seal(staging / "tree")
            _write_stamp(staging / STAMP, layer.digest, entries)
            staging.chmod(0o755)
            target = self.root / layer.digest
            for _ in range(2):
                try:
                    staging.rename(target)
                except OSError as error:
                    if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
                else:
                    staging = None
                    log(f"{layer.role} layer {layer.digest[:12]} cached")
                    return CacheEntry(layer.digest, target, entries)
                # Another fetcher cached it first: theirs, if sound (else it is discarded).
                winner = self.lookup(layer)
                if winner is not None:
                    return winner
            return None
        except FetchError as error:
            if error.code != EXIT_LOCAL:
                raise  # the layer itself is bad: no pod may run it
            log(f"cannot cache the {layer.role} layer ({error.message}); extracting it uncached")
            return None
        except OSError as error:
            log(f"cannot cache the {layer.role} layer ({error}); extracting it uncached")
            return None
        finally:
            if staging is not None:
                _remove(staging)

    def evict(self, keep: set[str]) -> None:
        """Remove least recently used entries (not ``keep``) until the cache fits its bound,
        and what crashed fetchers left behind."""
        entries: list[tuple[float, str, int]] = []
        now = time.time()
        try:
            children = list(os.scandir(self.root))
        except OSError:
            return
        for child in children:
            try:
                mtime = child.stat(follow_symlinks=False).st_mtime
                if child.name.startswith(".trash-") or (
                    child.name.startswith(".staging-") and now - mtime > STALE_SECONDS
                ):
                    _remove(Path(child.path))
                elif _DIGEST.fullmatch(child.name):
                    entries.append((mtime, child.name, _stamp_header(Path(child.path))[1]))
            except (OSError, _Corrupt):
                entries.append((0.0, child.name, 0))  # unreadable: the first to go
        total = sum(size for _, _, size in entries)
        for _, digest, size in sorted(entries):
            if total <= self.max_bytes:
                break
            if digest in keep:
                continue
            self._discard(self.root / digest)
            total -= size
            log(f"evicted layer {digest[:12]} ({size} bytes) from the node's cache")

    def _discard(self, path: Path) -> None:
        # Renamed away first: from then on no fetcher finds it, however long removal takes.
        trash = self.root / f".trash-{path.name[:16]}-{os.getpid()}-{time.monotonic_ns()}"
        try:
            path.rename(trash)
        except OSError:
            return  # already gone: another fetcher discarded it
        _remove(trash)


class _suppress_os_errors:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, OSError)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _seal(tree: Path) -> list[StampEntry]:
    """Make the extracted tree read-only (directories stay the fetcher's to remove) and list
    it, each directory before what it holds."""
    entries: list[StampEntry] = []
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        base = os.path.relpath(dirpath, tree)
        for name in sorted(dirnames + filenames):
            full = Path(dirpath, name)
            rel = name if base == "." else f"{base}/{name}"
            info = os.lstat(full)
            if stat.S_ISLNK(info.st_mode):
                entries.append((rel, "l", str(full.readlink()), 0, 0))
                continue
            mode = stat.S_IMODE(info.st_mode)
            # Directories as the app must traverse them whatever umask the fetcher ran under
            # (the fetcher is another user than the app when it fills the cache).
            mode = 0o755 if stat.S_ISDIR(info.st_mode) else (mode | 0o444) & 0o555
            full.chmod(mode)
            kind, size = ("d", 0) if stat.S_ISDIR(info.st_mode) else ("f", info.st_size)
            entries.append((rel, kind, size, mode, int(info.st_mtime)))
    tree.chmod(0o755)
    return entries


def _write_stamp(path: Path, digest: str, entries: list[StampEntry]) -> None:
    size = sum(int(value) for _, kind, value, _, _ in entries if kind == "f")
    header = {"schema": CACHE_SCHEMA, "digest": digest, "entries": len(entries), "bytes": size}
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps(header, sort_keys=True) + "\n")
        for entry in entries:
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")
    path.chmod(0o444)


def _stamp_header(path: Path) -> tuple[int, int]:
    """(entries, bytes) of an entry's stamp."""
    try:
        with (path / STAMP).open(encoding="utf-8") as stamp:
            header = json.loads(stamp.readline())
        return int(header["entries"]), int(header["bytes"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise _Corrupt(f"unreadable stamp: {type(error).__name__}") from None


def _verified(path: Path, digest: str) -> CacheEntry:
    """The entry at ``path`` if every file still is as its stamp says; else ``_Corrupt``.

    This runs once per cached file on every pod start: one JSON parse for the whole stamp,
    plain strings rather than ``Path`` objects, and each file's type and mode compared as
    one ``st_mode``."""
    try:
        with (path / STAMP).open(encoding="utf-8") as stamp:
            header = json.loads(stamp.readline())
            lines = json.loads("[" + ",".join(stamp.read().splitlines()) + "]")
    except (OSError, ValueError) as error:
        raise _Corrupt(f"no readable stamp: {type(error).__name__}") from None
    if not isinstance(header, dict) or header.get("schema") != CACHE_SCHEMA:
        raise _Corrupt("not a stamp of this fetcher")
    if header.get("digest") != digest or header.get("entries") != len(lines):
        raise _Corrupt("the stamp is for another layer, or cut short")
    tree = os.fspath(path / "tree")
    entries: list[StampEntry] = []
    for line in lines:
        if not (isinstance(line, list) and len(line) == 5):
            raise _Corrupt("a malformed stamp line")
        rel, kind, value, mode, mtime = line
        # Linking trusts these lines as ``check`` passed them: a stamp that was written over
        # must not name a path outside the tree.
        if not isinstance(rel, str) or rel.startswith("/") or "/../" in f"/{rel}/":
            raise _Corrupt("a stamp line names a path outside the tree")
        full = f"{tree}/{rel}"
        try:
            info = os.lstat(full)
        except (OSError, TypeError, ValueError):
            raise _Corrupt(f"{shown(rel)} is missing") from None
        if kind == "l":
            if _escapes(rel, value):
                raise _Corrupt(f"{shown(rel)} points outside the tree")
            if not stat.S_ISLNK(info.st_mode) or os.readlink(full) != value:  # noqa: PTH115 - a str path
                raise _Corrupt(f"{shown(rel)} is not the symlink it was")
        elif (
            kind not in _STAMP_TYPES
            or not isinstance(mode, int)
            or info.st_mode != _STAMP_TYPES[kind] | mode
            or int(info.st_mtime) != mtime
            or (kind == "f" and info.st_size != value)
        ):
            raise _Corrupt(f"{shown(rel)} changed")
        entries.append((rel, kind, value, mode, mtime))
    return CacheEntry(digest, path, entries)


def link_layer(entry: CacheEntry, tree: Path, seen: _Seen, config: Config) -> None:
    """Recreate a cached layer in ``tree``: its directories and symlinks made anew, its files
    hard-linked (cloned or copied where the cache is another mount).

    Each entry passed ``check`` when the layer was extracted into the cache, and the stamp
    that lists them is verified before this runs; only the rules that span layers are
    applied again (``admit``), all of them before anything is written. Then the layer's
    top-level entries are made here and the subtrees below them on ``LINK_THREADS`` threads
    (``mkdir`` and ``link`` wait on the disk, not on the interpreter)."""
    started = time.monotonic()
    for rel, kind, value, _, _ in entry.entries:
        admit(seen, rel, kind, int(value) if kind == "f" else 0, config)
    linker = _Linker(entry, tree)
    top, subtrees = _subtrees(entry.entries)
    linker.make(top)
    linker.make_in_parallel(subtrees, LINK_THREADS)
    elapsed = time.monotonic() - started
    how = "copied" if linker.copying else "linked"
    log(f"{how} {len(entry.entries)} entries from the node's cache in {elapsed:.2f} s")


def _subtrees(entries: list[StampEntry]) -> tuple[list[StampEntry], list[list[StampEntry]]]:
    """The entries one level deep, and the rest by the subtree (two levels deep, a package in
    ``node_modules``) they are in, each in the stamp's order: a directory before its entries."""
    top: list[StampEntry] = []
    subtrees: dict[str, list[StampEntry]] = {}
    for item in entries:
        rel = item[0]
        first = rel.find("/")
        if first < 0:
            top.append(item)
            continue
        second = rel.find("/", first + 1)
        subtrees.setdefault(rel if second < 0 else rel[:second], []).append(item)
    return top, list(subtrees.values())


class _Linker:
    """Makes a cached layer's entries under a tree; one instance shared by the threads."""

    def __init__(self, entry: CacheEntry, tree: Path) -> None:
        self.digest = entry.digest
        self.root, self.source_root = os.fspath(tree), os.fspath(entry.tree)
        self.umask = os.umask(0)
        os.umask(self.umask)
        self.copying = False
        self._switch = threading.Lock()
        self._stop = threading.Event()

    def make_in_parallel(self, subtrees: list[list[StampEntry]], threads: int) -> None:
        """Each subtree on one of ``threads`` threads (this one among them), the largest
        first onto the least loaded; the first error stops the others and is raised here
        once every thread is done, so nothing writes into the tree after this returns."""
        shares: list[list[StampEntry]] = [[] for _ in range(threads)]
        for subtree in sorted(subtrees, key=len, reverse=True):
            min(shares, key=len).extend(subtree)
        errors: list[BaseException] = []

        def share(items: list[StampEntry]) -> None:
            try:
                self.make(items)
            except BaseException as error:  # raised by the calling thread below
                errors.append(error)
                self._stop.set()

        helpers = [
            threading.Thread(target=share, args=(items,), name="link", daemon=True)
            for items in shares[1:]
            if items
        ]
        for helper in helpers:
            helper.start()
        try:
            self.make(shares[0])
            for helper in helpers:
                helper.join()
        except BaseException:  # an error here, or a signal's while waiting
            self._stop.set()
            for helper in helpers:
                helper.join()
            raise
        if errors:
            raise errors[0]

    def make(self, items: list[StampEntry]) -> None:
        root, source_root, umask = self.root, self.source_root, self.umask
        for rel, kind, value, mode, _ in items:
            if self._stop.is_set():
                return
            target = f"{root}/{rel}"
            if kind == "d":
                try:
                    os.mkdir(target, mode)  # noqa: PTH102 - a str path
                except FileExistsError:  # a directory an earlier layer made is shared
                    os.chmod(target, mode)  # noqa: PTH101 - a str path
                    continue
                if mode & umask:  # explicit: the process's umask must not narrow it
                    os.chmod(target, mode)  # noqa: PTH101 - a str path
                continue
            if kind == "l":
                os.symlink(str(value), target)  # noqa: PTH211 - a str path
                continue
            source = f"{source_root}/{rel}"
            if not self.copying:
                try:
                    os.link(source, target)
                    continue
                except FileNotFoundError:
                    raise CacheGone(f"cached layer {self.digest[:12]} was evicted") from None
                except OSError as error:
                    if error.errno not in LINK_FALLBACK:
                        raise
                    self._copy_from_now_on(error)
            try:
                _clone(Path(source), Path(target), mode)
            except FileNotFoundError:
                raise CacheGone(f"cached layer {self.digest[:12]} was evicted") from None

    def _copy_from_now_on(self, error: OSError) -> None:
        with self._switch:
            if not self.copying:
                self.copying = True
                log(f"cannot hard-link from the cache ({error.strerror}); copying its files")


class _suppress_exists:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, FileExistsError)


def _clone(source: Path, target: Path, mode: int) -> None:
    with source.open("rb") as src, target.open("xb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
        except OSError:
            shutil.copyfileobj(src, dst, CHUNK)
    target.chmod(mode)


# ── putting it in place ────────────────────────────────────────────────────────


def work_area(dest: Path) -> Path:
    """Where the work directory goes: beside DEST, or inside it if DEST is a mount point."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise FetchError(EXIT_LOCAL, f"destination {dest} exists and is not a directory")
    if not dest.parent.is_dir():
        raise FetchError(EXIT_LOCAL, f"parent directory of {dest} does not exist")
    return dest if dest.is_mount() else dest.parent


def install(tree: Path, dest: Path, work: Path, mode: int = 0o755) -> None:
    """Move the finished tree to DEST; whatever DEST held before ends up in `work`."""
    previous = work / "previous"
    if work.parent == dest:  # DEST is a mount point and cannot be renamed: move entries
        previous.mkdir()
        for entry in list(dest.iterdir()):
            if entry != work:
                entry.rename(previous / entry.name)
        for entry in list(tree.iterdir()):
            entry.rename(dest / entry.name)
        return
    tree.chmod(mode)  # mkdtemp made it 0700; the app reads it as a normal directory
    if dest.exists():
        dest.rename(previous)
        try:
            tree.rename(dest)
        except OSError:
            previous.rename(dest)
            raise
    else:
        tree.rename(dest)


# ── main ───────────────────────────────────────────────────────────────────────


def _interrupted(signum: int, frame: FrameType | None) -> NoReturn:
    # Raise instead of dying so the `finally` below removes the work directory.
    raise FetchError(128 + signum, f"interrupted by {signal.Signals(signum).name}")


def run(config: Config) -> None:
    if not hasattr(tarfile, "data_filter"):
        raise FetchError(EXIT_LOCAL, "this Python lacks tarfile's data filter (need 3.11.4+)")
    started = time.monotonic()
    area = work_area(config.dest)
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{config.dest.name}.fetch-", dir=area))
    except OSError as error:
        raise FetchError(EXIT_LOCAL, f"cannot write next to {config.dest}: {error}") from None
    try:
        tree = work / "tree"
        if config.format == "manifest":
            tree.mkdir()
            try:
                fetch_layers(config, work, tree)
            except CacheGone as gone:
                log(f"{gone}; fetching again without the cache")
                shutil.rmtree(tree)
                tree.mkdir()
                fetch_layers(config, work, tree, use_cache=False)
        else:
            archive = work / "app.tar.gz"
            actual = download(config, archive)
            if actual != config.digest:
                raise FetchError(
                    EXIT_DIGEST, f"digest mismatch: expected {config.digest}, got {actual}"
                )
            log("digest ok")
            tree.mkdir()
            extract(archive, tree, config)
            archive.unlink()  # give its space back early: an emptyDir may have a size limit
        # No SIGTERM during the swap: half a swap followed by the cleanup below would delete
        # the previous DEST without the new one in place. Left blocked: only cleanup remains.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        try:
            # With a cache the fetcher is another user than the app: its group gets the
            # root of the tree as the app's own user had it.
            install(tree, config.dest, work, 0o775 if config.cache else 0o755)
        except OSError as error:
            raise FetchError(EXIT_LOCAL, f"cannot move into {config.dest}: {error}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"ready: {config.dest} in {time.monotonic() - started:.2f} s")


def main(argv: Sequence[str]) -> int:
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)
    try:
        run(parse_args(argv))
    except FetchError as error:
        print(f"fetch: error: {one_line(error.message)}", file=sys.stderr, flush=True)
        return error.code
    except OSError as error:
        print(f"fetch: error: {one_line(str(error))[:300]}", file=sys.stderr, flush=True)
        return EXIT_LOCAL
    except Exception as error:  # a bug: still one line, never a traceback
        what = f"{type(error).__name__}: {one_line(str(error))[:300]}"
        print(f"fetch: error: internal error: {what}", file=sys.stderr, flush=True)
        return EXIT_INTERNAL
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
