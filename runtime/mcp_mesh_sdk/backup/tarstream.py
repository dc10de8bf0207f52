"""Write tar members one by one to any `write()` target, hashing file data as it streams."""

from __future__ import annotations

import hashlib
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


def header(info: tarfile.TarInfo) -> bytes:
    """GNU format: long names via ././@LongLink, and no pax record building per member."""
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


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
