"""A lean sequential tar reader: headers parsed by `tarfile.TarInfo.frombuf`, data streamed.

`tarfile`'s stream mode re-buffers every byte through Python slices; this reads member data
straight from the source into the caller's buffer. Handles ustar, GNU long names and links,
and pax `path`/`linkpath`/`size` records. Damage raises `tarfile.TarError` or `EOFError`.
"""

from __future__ import annotations

import tarfile
from typing import Any, Protocol

BLOCK = tarfile.BLOCKSIZE


class RawSource(Protocol):
    def readinto(self, buffer: Any) -> int | None: ...


class TarReader:
    def __init__(self, source: RawSource) -> None:
        self.source = source
        self._remaining = 0  # unread data of the current member
        self._padding = 0
        self._skip_buffer = bytearray(1 << 20)

    def _fill(self, view: memoryview) -> int:
        done = 0
        while done < len(view):
            count = self.source.readinto(view[done:])
            if not count:
                break
            done += count
        return done

    def _exact(self, size: int) -> bytes:
        buffer = bytearray(size)
        if self._fill(memoryview(buffer)) != size:
            raise EOFError("the tar stream ends inside a member")
        return bytes(buffer)

    def _skip(self, size: int) -> None:
        view = memoryview(self._skip_buffer)
        while size:
            count = self._fill(view[: min(size, len(view))])
            if not count:
                raise EOFError("the tar stream ends inside a member")
            size -= count

    def next(self) -> tarfile.TarInfo | None:
        """The next member's header (after skipping what is left of the current one)."""
        self._skip(self._remaining + self._padding)
        self._remaining = self._padding = 0
        long_name: str | None = None
        long_link: str | None = None
        pax: dict[str, str] = {}
        while True:
            block = bytearray(BLOCK)
            got = self._fill(memoryview(block))
            if got == 0:
                raise EOFError("the tar stream ends without its end-of-archive marker")
            if got < BLOCK:
                raise EOFError("the tar stream ends inside a header")
            if not any(block):
                return None
            info = tarfile.TarInfo.frombuf(bytes(block), "utf-8", "surrogateescape")
            size = info.size
            padded = size + (-size % BLOCK)
            if info.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
                raw = self._exact(padded)[:size].split(b"\0", 1)[0]
                text = raw.decode("utf-8", "surrogateescape")
                if info.type == tarfile.GNUTYPE_LONGNAME:
                    long_name = text
                else:
                    long_link = text
                continue
            if info.type in (tarfile.XHDTYPE, tarfile.XGLTYPE):
                records = _pax_records(self._exact(padded)[:size])
                if info.type == tarfile.XHDTYPE:
                    pax.update(records)
                continue
            if long_name is not None:
                info.name = long_name
            if long_link is not None:
                info.linkname = long_link
            if "path" in pax:
                info.name = pax["path"]
            if "linkpath" in pax:
                info.linkname = pax["linkpath"]
            if "size" in pax:
                info.size = int(pax["size"])
            if info.isdir():
                info.name = info.name.rstrip("/")
            data = info.size if info.isreg() else 0
            self._remaining = data
            self._padding = -data % BLOCK
            return info

    def readinto(self, buffer: Any) -> int:
        """Data of the current member (0 at its end)."""
        view = memoryview(buffer).cast("B")[: self._remaining]
        if not view:
            return 0
        count = self.source.readinto(view)
        if not count:
            raise EOFError("the tar stream ends inside a member's data")
        self._remaining -= count
        return count

    def read(self, size: int = -1) -> bytes:
        wanted = self._remaining if size < 0 else min(size, self._remaining)
        data = self._exact(wanted)
        self._remaining -= wanted
        return data


def _pax_records(data: bytes) -> dict[str, str]:
    try:
        return _parse_pax(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise tarfile.ReadError(f"bad pax header: {exc}") from exc


def _parse_pax(data: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    position = 0
    while position < len(data):
        space = data.index(b" ", position)
        length = int(data[position:space])
        if length <= 0:
            raise tarfile.ReadError("bad pax record length")
        key, _, value = data[space + 1 : position + length - 1].partition(b"=")
        records[key.decode()] = value.decode("utf-8", "surrogateescape")
        position += length
    return records
