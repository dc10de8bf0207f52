"""Write tar members one by one to any `write()` target, hashing file data as it streams."""

from __future__ import annotations

import hashlib
import tarfile
from typing import BinaryIO, Protocol

BLOCK = tarfile.BLOCKSIZE
READ_SIZE = 1 << 20


class Sink(Protocol):
    def write(self, data: bytes | bytearray | memoryview) -> int: ...


def header(info: tarfile.TarInfo) -> bytes:
    """GNU format: long names via ././@LongLink, and no pax record building per member."""
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


class TarStream:
    """A tar archive written sequentially; `close()` writes the end-of-archive blocks."""

    def __init__(self, out: Sink) -> None:
        self.out = out
        self._buffer = bytearray(READ_SIZE)

    def add_bytes(self, info: tarfile.TarInfo, data: bytes) -> None:
        info.size = len(data)
        self.out.write(header(info))
        self.out.write(data)
        self._pad(len(data))

    def add_entry(self, info: tarfile.TarInfo) -> None:
        """A directory or a symbolic link: header only."""
        info.size = 0
        self.out.write(header(info))

    def add_file(self, info: tarfile.TarInfo, source: BinaryIO) -> tuple[str, bool]:
        """Stream `info.size` bytes of `source`; (sha256, whether the file was shorter).

        A file that shrank while being read is padded with zeros so the archive stays valid;
        the hash covers exactly what was archived.
        """
        self.out.write(header(info))
        digest = hashlib.sha256()
        view = memoryview(self._buffer)
        remaining = info.size
        short = False
        while remaining:
            count = source.readinto(view[: min(READ_SIZE, remaining)])  # type: ignore[attr-defined]
            if not count:
                short = True
                count = min(READ_SIZE, remaining)
                view[:count] = bytes(count)
            piece = view[:count]
            digest.update(piece)
            self.out.write(piece)
            remaining -= count
        self._pad(info.size)
        return digest.hexdigest(), short

    def _pad(self, size: int) -> None:
        remainder = size % BLOCK
        if remainder:
            self.out.write(bytes(BLOCK - remainder))

    def close(self) -> None:
        self.out.write(bytes(2 * BLOCK))
