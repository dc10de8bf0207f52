"""A gzip writer that compresses on every core: each chunk becomes its own gzip member.

Concatenated gzip members are one valid gzip stream (RFC 1952), so `tar xzf`, `gzip -d` and
Python's `gzip`/`tarfile` read the result unchanged. Deflate runs in ISA-L (python-isal) when
it loads: the same standard gzip members at zlib level 1's ratio, about three times as fast;
without it (the wheel missing or not loading on this machine) zlib writes the same format, and
any reader reads either. Both release the GIL, so a thread pool is enough for parallelism.
Chunks whose sample does not compress are stored (framed here, not by zlib's level 0), which
costs a copy instead of a slow, useless deflate. Memory stays bounded: at most `2 x workers`
chunks are in flight.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import queue
import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO


def _load_isal() -> Any:
    """python-isal's zlib-like module, or None when it is not installed or its extension does
    not load on this machine (then zlib writes and reads the same format)."""
    try:
        from isal import isal_zlib
    except ImportError:
        return None
    return isal_zlib


_isal = _load_isal()

CHUNK = 4 << 20
SAMPLE = 64 << 10
INCOMPRESSIBLE = 0.9  # a sample that shrinks less than 10 % means: store this chunk
GZIP_WBITS = 31
ISAL_LEVELS = range(1, 4)  # ISA-L's levels; 1 matches zlib 1's ratio, 3 about zlib 6's
# What reading a damaged deflate stream raises, from either library.
INFLATE_ERRORS: tuple[type[Exception], ...] = (
    (zlib.error,) if _isal is None else (zlib.error, _isal.error)
)


def engine(level: int) -> str:
    """What compresses at `level`: "stored" for 0 (no deflate); "isal" for 1-3 when it loads;
    "zlib" for 4-9 (ratios ISA-L does not reach) and whenever isal is missing."""
    if level == 0:
        return "stored"
    return "isal" if _isal is not None and level in ISAL_LEVELS else "zlib"


def deflate(data: bytes | bytearray | memoryview, level: int, wbits: int = GZIP_WBITS) -> bytes:
    """`data` compressed at `level` (a gzip member with the default `wbits`), by `engine`."""
    if _isal is not None and level in ISAL_LEVELS:
        return bytes(_isal.compress(data, level, wbits))
    return zlib.compress(data, level, wbits)


def inflater() -> Any:
    """A decompressobj for gzip members (zlib's interface), ISA-L's when it loads."""
    return (zlib if _isal is None else _isal).decompressobj(GZIP_WBITS)


def crc32(data: bytes | bytearray | memoryview) -> int:
    return int((zlib if _isal is None else _isal).crc32(data))


# A gzip member's header as zlib writes it (no name, no time, extra flag 4, OS Unix).
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\x03"
STORED_BLOCK = 0xFFFF  # the most a stored deflate block holds


def stored_member(data: bytes | bytearray | memoryview) -> bytes:
    """A gzip member holding `data` in stored deflate blocks (RFC 1951 3.2.4), framed here:
    zlib's level 0 copies everything through its window (about 0.5 GB/s); this is one copy
    and a CRC, at memory speed. Every gzip reader reads it as it reads zlib's."""
    view = memoryview(data).cast("B")
    size = len(view)
    parts: list[bytes | memoryview] = [GZIP_HEADER]
    start = 0
    while True:
        piece = view[start : start + STORED_BLOCK]
        start += len(piece)
        final = start >= size
        parts += [struct.pack("<BHH", final, len(piece), len(piece) ^ 0xFFFF), piece]
        if final:
            break
    parts.append(struct.pack("<II", crc32(view), size & 0xFFFFFFFF))
    return b"".join(parts)


def compress_chunk(chunk: bytes | bytearray, level: int) -> bytes:
    """One gzip member holding `chunk`: stored when `level` is 0 or a sample of it does not
    compress, else deflated."""
    if level > 0 and len(chunk) > SAMPLE:
        sample = chunk[:SAMPLE]
        if len(deflate(sample, level, zlib.MAX_WBITS)) > INCOMPRESSIBLE * len(sample):
            level = 0
    return deflate(chunk, level) if level > 0 else stored_member(chunk)


class ParallelGzipWriter:
    """File-like `write()` target; compressed bytes go to `out`, each block also to `observe`.

    `adaptive`: when the backlog of chunks waiting for a compressor is full as a new chunk
    arrives (the stream would stall), that chunk is stored instead of deflated, so
    compression never slows the stream below what reading and hashing allow (the ratio then
    depends on how much CPU is free). Without it, the writer waits for the compressors and
    every chunk gets `level`. Compressed members are written, in order, by a thread of
    their own, so the caller's reading overlaps with the writing.
    """

    def __init__(
        self,
        out: BinaryIO,
        level: int = 1,
        workers: int | None = None,
        observe: Callable[[bytes], None] | None = None,
        adaptive: bool = False,
    ) -> None:
        self.out = out
        self.level = level
        self.adaptive = adaptive
        self.chunks = 0
        self.stored_for_speed = 0
        self.observe = observe
        self.workers = workers or min(4, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="gzip")
        self._inflight: deque[Future[bytes]] = deque()
        self._outbox: queue.Queue[Future[bytes] | None] = queue.Queue(maxsize=2 * self.workers)
        self._write_error: BaseException | None = None
        self._writer = threading.Thread(target=self._write_loop, name="gzip-out", daemon=True)
        self._writer.start()
        self._chunk = bytearray(CHUNK)
        self._filled = 0
        self.bytes_in = 0
        self.bytes_out = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Copy `data` into the current chunk (callers may reuse their buffers)."""
        view = memoryview(data).cast("B")
        size = len(view)
        while view:
            take = min(len(view), CHUNK - self._filled)
            self._chunk[self._filled : self._filled + take] = view[:take]
            self._filled += take
            view = view[take:]
            if self._filled == CHUNK:
                self._rotate()
        return size

    def reserve(self, limit: int) -> memoryview:
        """Writable space (at most `limit` bytes) in the current chunk, to fill in place.

        Call `commit(n)` after writing `n` bytes into it. The memory stays untouched after
        that (full chunks are handed over, never reused), so it can be hashed concurrently.
        """
        if self._filled == CHUNK:
            self._rotate()
        end = min(CHUNK, self._filled + limit)
        return memoryview(self._chunk)[self._filled : end]

    def commit(self, count: int) -> None:
        self._filled += count
        if self._filled == CHUNK:
            self._rotate()

    def _rotate(self) -> None:
        self._submit(self._chunk)
        self._chunk = bytearray(CHUNK)  # the worker owns the full one now
        self._filled = 0

    def _submit(self, chunk: bytes | bytearray) -> None:
        if self._write_error is not None:
            raise self._write_error
        self.bytes_in += len(chunk)
        self.chunks += 1
        level = self.level
        while self._inflight and self._inflight[0].done():
            self._inflight.popleft()
        if self.adaptive and level > 0:
            waiting = sum(1 for future in self._inflight if not future.done())
            if waiting >= 2 * self.workers:  # the stream would stall on the compressors
                level = 0
                self.stored_for_speed += 1
        future = self._pool.submit(compress_chunk, chunk, level)
        self._inflight.append(future)
        self._outbox.put(future)  # blocks while the backlog is full

    def _write_loop(self) -> None:
        while (future := self._outbox.get()) is not None:
            try:
                if self._write_error is None:
                    block = future.result()
                    self.out.write(block)
                    self.bytes_out += len(block)
                    if self.observe is not None:
                        self.observe(block)
            except BaseException as exc:
                self._write_error = exc

    def close(self) -> None:
        """Compress what is buffered and write every pending member, in order."""
        try:
            if self._filled:
                self._submit(self._chunk[: self._filled])
                self._filled = 0
        finally:
            self._outbox.put(None)
            self._writer.join()
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._write_error is not None:
            raise self._write_error

    def abort(self) -> None:
        self._write_error = self._write_error or OSError("aborted")
        if self._writer.is_alive():
            self._outbox.put(None)
            self._writer.join()
        self._pool.shutdown(wait=True, cancel_futures=True)


class SequentialHasher:
    """Hash on another core: updates run in a background thread, in the order given.

    Callers must not modify a buffer after handing it over. At most `depth` buffers (of up
    to 4 MiB each here) wait, which bounds memory. `wait()` returns once every update queued
    so far is done; hashlib releases the GIL, so this overlaps with I/O.
    """

    def __init__(self, depth: int = 8) -> None:
        self._queue: queue.Queue[tuple[Any, Any] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                if self._error is None:
                    item[0].update(item[1])
            except BaseException as exc:
                self._error = exc
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def update(self, digest: Any, data: bytes | bytearray | memoryview) -> None:
        self._queue.put((digest, data))

    def wait(self) -> None:
        self._queue.join()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()


class PipelinedGzipReader(io.RawIOBase):
    """Read a (multi-member) gzip file with inflation in a background thread.

    The thread reads the raw file, hashes it (`digest`, `size`: the archive's sha256 comes
    for free) and inflates it while the caller parses and hashes what comes out: two cores
    instead of one. The inflater (ISA-L's or zlib's) checks every member's CRC and length; a
    file that ends inside a member raises EOFError. At most `depth` pieces of `piece_size` bytes
    wait in between.
    """

    def __init__(self, raw: BinaryIO, read_size: int = 1 << 20, depth: int = 8) -> None:
        super().__init__()
        self.digest = hashlib.sha256()
        self.size = 0
        self._read_size = read_size
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._current = memoryview(b"")
        self._finished = False
        self._thread = threading.Thread(target=self._run, args=(raw,), name="gunzip", daemon=True)
        self._thread.start()

    def readable(self) -> bool:
        return True

    def _put(self, item: bytes | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, raw: BinaryIO) -> None:
        try:
            self._inflate(raw)
        except BaseException as exc:  # handed to the reading thread, raised there
            self._put(exc)
        else:
            self._put(None)

    def _inflate(self, raw: BinaryIO) -> None:
        inflating = inflater()
        inside_member = False
        seen_any = False
        while not self._stop.is_set():
            data = raw.read(self._read_size)
            if not data:
                break
            seen_any = True
            self.digest.update(data)
            self.size += len(data)
            pending = data
            while True:
                out = inflating.decompress(pending, self._read_size)
                if out and not self._put(out):
                    return
                if inflating.eof:
                    pending = inflating.unused_data
                    inflating = inflater()
                    inside_member = False
                    if not pending:
                        break
                    continue
                inside_member = True
                pending = inflating.unconsumed_tail
                if not pending and len(out) < self._read_size:
                    break
        if not seen_any:
            raise EOFError("the file is empty")
        if inside_member:
            raise EOFError("the file ends inside a gzip member (truncated)")

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        while not self._current:
            if self._finished:
                return 0
            item = self._queue.get()
            if item is None:
                self._finished = True
                return 0
            if isinstance(item, BaseException):
                self._finished = True
                raise item
            self._current = memoryview(item)
        count = min(len(target), len(self._current))
        target[:count] = self._current[:count]
        self._current = self._current[count:]
        return count

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        super().close()
