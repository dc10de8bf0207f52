"""Write tar members one by one to any `write()` target, hashing file data as it streams."""

from __future__ import annotations

import hashlib
import struct
import tarfile
from typing import Any, BinaryIO, Protocol, cast

from mcp_mesh_sdk.backup.gzstream import SequentialHasher

BLOCK = tarfile.BLOCKSIZE
INLINE_HASH_LIMIT = 256 << 10


class Sink(Protocol):
    def write(self, data: bytes | bytearray | memoryview) -> int: ...


class ChunkSink(Sink, Protocol):
    def reserve(self, limit: int) -> memoryview: ...
    def commit(self, count: int) -> None: ...


_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")
_LONG = b"././@LongLink"


def _number(value: int, width: int) -> bytes:
    """An octal field, or GNU base-256 when the value does not fit (sizes over 8 GiB)."""
    if 0 <= value < 8 ** (width - 1):
        return b"%0*o\0" % (width - 1, value)
    return bytes([0x80]) + value.to_bytes(width - 1, "big", signed=True)


def _block(name: bytes, info: tarfile.TarInfo, size: int, kind: bytes, link: bytes) -> bytes:
    raw = _HEADER.pack(
        name,
        _number(info.mode & 0o7777, 8),
        _number(info.uid, 8),
        _number(info.gid, 8),
        _number(size, 12),
        _number(int(info.mtime), 12),
        b" " * 8,
        kind,
        link,
        tarfile.GNU_MAGIC,
        info.uname.encode("utf-8", "surrogateescape")[:32],
        info.gname.encode("utf-8", "surrogateescape")[:32],
        b"",
        b"",
        b"",
    )
    checksum = b"%06o\0 " % sum(raw)
    return raw[:148] + checksum + raw[156:]


def _long(kind: bytes, value: bytes, info: tarfile.TarInfo) -> bytes:
    data = value + b"\0"
    return _block(_LONG, info, len(data), kind, b"") + data + bytes(-len(data) % BLOCK)


def header(info: tarfile.TarInfo) -> bytes:
    """A GNU tar header (long names and links as ././@LongLink records), packed directly:
    `TarInfo.tobuf` costs several times more, per member."""
    name = info.name.encode("utf-8", "surrogateescape")
    if info.isdir() and not name.endswith(b"/"):
        name += b"/"
    link = info.linkname.encode("utf-8", "surrogateescape")
    prefix = b""
    if len(name) > 100:
        prefix += _long(tarfile.GNUTYPE_LONGNAME, name, info)
    if len(link) > 100:
        prefix += _long(tarfile.GNUTYPE_LONGLINK, link, info)
    size = info.size if info.isreg() else 0
    return prefix + _block(name[:100], info, size, info.type, link[:100])


class TarStream:
    """A tar archive written sequentially; `close()` writes the end-of-archive blocks."""

    def __init__(self, out: Sink) -> None:
        self.out = out

    def add_bytes(self, info: tarfile.TarInfo, data: bytes) -> None:
        info.size = len(data)
        self.out.write(header(info))
        self.out.write(data)
        self._pad(len(data))

    def add_entry(self, info: tarfile.TarInfo) -> None:
        """A directory or a symbolic link: header only."""
        info.size = 0
        self.out.write(header(info))

    def add_file(
        self, info: tarfile.TarInfo, source: BinaryIO, hasher: SequentialHasher
    ) -> tuple[Any, bool]:
        """Stream `info.size` bytes of `source`; (its sha256 object, whether it was shorter).

        Data is read straight into the compressor's chunk and hashed by `hasher` on another
        core: read `.hexdigest()` only after `hasher.wait()`. A file that shrank while being
        read is padded with zeros so the archive stays valid; the hash covers what was archived.
        """
        sink = cast(ChunkSink, self.out)
        sink.write(header(info))
        digest = hashlib.sha256()
        remaining = info.size
        short = False
        inline = remaining < INLINE_HASH_LIMIT  # small: not worth a hand-over
        while remaining:
            view = sink.reserve(remaining)
            count = source.readinto(view)  # type: ignore[attr-defined]
            if not count:
                short = True
                count = len(view)
                view[:count] = bytes(count)
            piece = view[:count]
            if inline:
                digest.update(piece)
            else:
                hasher.update(digest, piece)
            sink.commit(count)
            remaining -= count
        self._pad(info.size)
        return digest, short

    def _pad(self, size: int) -> None:
        remainder = size % BLOCK
        if remainder:
            self.out.write(bytes(BLOCK - remainder))

    def close(self) -> None:
        self.out.write(bytes(2 * BLOCK))
