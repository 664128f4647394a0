"""A gzip writer that compresses on every core and still writes one standard member.

The uncompressed stream is cut into fixed-size blocks (``BLOCK_SIZE``, never a
function of the thread count, so the output bytes do not depend on it). Each block
is deflated on its own by a worker thread (zlib releases the GIL), primed with the
previous block's last 32 KiB as a dictionary as pigz does, and ended with
``Z_SYNC_FLUSH`` so the pieces join, byte-aligned, into one raw deflate stream; the
last block ends with ``Z_FINISH``. The gzip header is fixed (no name, mtime 0, OS
255 "unknown"), the trailer carries the CRC-32 and length of all the input. The
output is hashed with SHA-256 as it is written, so the caller gets the digest of
the file without reading it back.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import BinaryIO

# Part of the output format: changing it changes every digest. pigz uses 128 KiB;
# 256 KiB halves the per-block cost of priming a compressor with its dictionary.
BLOCK_SIZE = 256 * 1024
_WINDOW = 32 * 1024
# ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255: the same on every machine.
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

Buffer = bytes | bytearray | memoryview


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _deflate_block(block: Buffer, dictionary: bytes, level: int, last: bool) -> bytes:
    if dictionary:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15, zdict=dictionary)
    else:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return compressor.compress(block) + compressor.flush(
        zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH
    )


class ParallelGzipWriter:
    """Write-only gzip stream over ``fileobj``; call :meth:`close` to finish it.

    ``close`` writes the last block and the trailer but leaves ``fileobj`` open.
    Leaving the ``with`` block on an exception abandons the stream (no trailer).
    """

    def __init__(
        self,
        fileobj: BinaryIO,
        *,
        threads: int | None = None,
        level: int = 6,
        block_size: int = BLOCK_SIZE,
    ) -> None:
        if block_size < _WINDOW:
            raise ValueError(f"block_size must be at least {_WINDOW}")
        self._out = fileobj
        self._level = level
        self._block_size = block_size
        self._threads = threads if threads is not None else default_threads()
        self._pool = (
            ThreadPoolExecutor(self._threads, thread_name_prefix="pgzip")
            if self._threads > 1
            else None
        )
        # Enough blocks in flight to keep every worker busy while the oldest is
        # written; bounded so memory stays a few MiB whatever the input size.
        self._max_pending = 2 * self._threads + 2
        self._pending: deque[Future[bytes]] = deque()
        self._block = bytearray()
        self._dictionary = b""
        self._crc = 0
        self._length = 0
        self._sha256 = hashlib.sha256()
        self._size = 0
        self._closed = False
        self._emit(GZIP_HEADER)

    # -- results -------------------------------------------------------------

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of the compressed bytes written so far."""
        return self._sha256.hexdigest()

    @property
    def compressed_size(self) -> int:
        return self._size

    @property
    def uncompressed_size(self) -> int:
        return self._length

    # -- writing -------------------------------------------------------------

    def write(self, data: Buffer) -> None:
        if self._closed:
            raise ValueError("write to a closed ParallelGzipWriter")
        view = memoryview(data).cast("B")
        size = self._block_size
        while len(view):
            room = size - len(self._block)
            if not self._block and len(view) >= size:
                # A whole block straight from the caller's buffer: no copy into ours.
                self._submit(bytes(view[:size]))
                view = view[size:]
                continue
            self._block += view[:room]
            view = view[room:]
            if len(self._block) == size:
                block, self._block = self._block, bytearray()
                self._submit(block)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            block, self._block = self._block, bytearray()
            self._submit(block, last=True)
            while self._pending:
                self._emit(self._pending.popleft().result())
            self._emit(struct.pack("<II", self._crc, self._length & 0xFFFFFFFF))
        finally:
            self._shutdown()

    def abort(self) -> None:
        self._closed = True
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._shutdown()

    def __enter__(self) -> ParallelGzipWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- internals -----------------------------------------------------------

    def _submit(self, block: Buffer, *, last: bool = False) -> None:
        # The CRC is chained in order here (zlib.crc32 releases the GIL too); the
        # deflate work is what goes to the pool.
        self._crc = zlib.crc32(block, self._crc)
        self._length += len(block)
        dictionary = self._dictionary
        # Every block but the last is a full block_size (>= 32 KiB) long.
        self._dictionary = bytes(block[-_WINDOW:])
        if self._pool is None:
            self._emit(_deflate_block(block, dictionary, self._level, last))
            return
        while len(self._pending) >= self._max_pending:
            self._emit(self._pending.popleft().result())
        self._pending.append(
            self._pool.submit(_deflate_block, block, dictionary, self._level, last)
        )

    def _emit(self, chunk: bytes) -> None:
        self._out.write(chunk)
        self._sha256.update(chunk)
        self._size += len(chunk)

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
