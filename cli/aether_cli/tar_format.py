"""POSIX ustar headers, with a pax extended header when a field does not fit.

Field layout and encodings match Python's tarfile (PAX_FORMAT), so either can read or
reproduce the other; uid, gid and mtime are 0 and owner names empty.
"""

from __future__ import annotations

from aether_cli.tree import Entry

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
    return pax + records + padding(len(records)) + header


def padding(size: int) -> bytes:
    return bytes(-size % 512)
