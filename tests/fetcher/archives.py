"""Build app.tar.gz archives in memory, honest or hostile, entry by entry."""

from __future__ import annotations

import gzip
import io
import tarfile
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MTIME = 1_700_000_000  # the CLI's archives carry a fixed mtime


@dataclass
class Member:
    info: tarfile.TarInfo
    content: IO[bytes] | None = None
    data: bytes = b""  # what a regular file holds, for comparing after extraction


def _info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = MTIME
    return info


def file(name: str, data: bytes = b"", mode: int = 0o644) -> Member:
    info = _info(name, tarfile.REGTYPE, mode)
    info.size = len(data)
    return Member(info, io.BytesIO(data), data)


def directory(name: str, mode: int = 0o755) -> Member:
    return Member(_info(name, tarfile.DIRTYPE, mode))


def symlink(name: str, target: str) -> Member:
    info = _info(name, tarfile.SYMTYPE, 0o777)
    info.linkname = target
    return Member(info)


def hardlink(name: str, target: str) -> Member:
    info = _info(name, tarfile.LNKTYPE, 0o644)
    info.linkname = target
    return Member(info)


def special(name: str, kind: bytes) -> Member:
    """A character/block device or FIFO (tarfile.CHRTYPE, BLKTYPE, FIFOTYPE)."""
    info = _info(name, kind, 0o666)
    info.devmajor, info.devminor = 1, 3
    return Member(info)


class _Zeros(io.RawIOBase):
    """`size` zero bytes, produced as read: a bomb need not exist in memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        count = min(len(view), self.left)
        view[:count] = bytes(count)
        self.left -= count
        return count


def zeros(name: str, size: int) -> Member:
    info = _info(name, tarfile.REGTYPE, 0o644)
    info.size = size
    return Member(info, io.BufferedReader(_Zeros(size), buffer_size=1024 * 1024))


def tar_gz(*members: Member) -> bytes:
    """A gzip-compressed PAX tar of `members`, in the order given."""
    raw = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=6) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for member in members:
            tar.addfile(member.info, member.content)
    return raw.getvalue()


def extended_header_bomb(kind: bytes, size: int) -> bytes:
    """A tar.gz whose first header is a GNU long name (``tarfile.GNUTYPE_LONGNAME``) or a pax
    header (``tarfile.XHDTYPE``) announcing ``size`` bytes of data, which follow ('a' after
    'a': a few hundred KB compressed), then one honest file. Written in chunks: the bomb
    never exists in memory here."""
    raw = io.BytesIO()
    header = tarfile.TarInfo("././@LongLink" if kind == tarfile.GNUTYPE_LONGNAME else "pax")
    header.type, header.size, header.mtime = kind, size, MTIME
    honest = _info("package.json", tarfile.REGTYPE, 0o644)
    honest.size = 3
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=6) as compressed:
        compressed.write(header.tobuf(format=tarfile.GNU_FORMAT))
        chunk = b"a" * (1024 * 1024)
        for start in range(0, size, len(chunk)):
            compressed.write(chunk[: size - start])
        compressed.write(bytes(-size % tarfile.BLOCKSIZE))
        compressed.write(honest.tobuf(format=tarfile.GNU_FORMAT))
        compressed.write(b"{}\n".ljust(tarfile.BLOCKSIZE, b"\0"))
        compressed.write(bytes(2 * tarfile.BLOCKSIZE))
    return raw.getvalue()
