"""A gzip writer that compresses on every core: each chunk becomes its own gzip member.

Concatenated gzip members are one valid gzip stream (RFC 1952), so `tar xzf`, `gzip -d` and
Python's `gzip`/`tarfile` read the result unchanged. zlib releases the GIL, so a thread pool is
enough for parallelism. Chunks whose sample does not compress are stored (level 0), which costs
a copy instead of a slow, useless deflate. Memory stays bounded: at most `2 x workers` chunks
are in flight.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import queue
import threading
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

CHUNK = 4 << 20
SAMPLE = 64 << 10
INCOMPRESSIBLE = 0.9  # a sample that shrinks less than 10 % means: store this chunk
GZIP_WBITS = 31


def compress_chunk(chunk: bytes | bytearray, level: int) -> bytes:
    """One gzip member holding `chunk`."""
    if level > 0 and len(chunk) > SAMPLE:
        sample = chunk[:SAMPLE]
        if len(zlib.compress(sample, level)) > INCOMPRESSIBLE * len(sample):
            level = 0
    return zlib.compress(chunk, level, GZIP_WBITS)


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
    instead of one. zlib checks every member's CRC and length; a file that ends inside a
    member raises EOFError. At most `depth` pieces of `piece_size` bytes wait in between.
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
        inflater = zlib.decompressobj(GZIP_WBITS)
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
                out = inflater.decompress(pending, self._read_size)
                if out and not self._put(out):
                    return
                if inflater.eof:
                    pending = inflater.unused_data
                    inflater = zlib.decompressobj(GZIP_WBITS)
                    inside_member = False
                    if not pending:
                        break
                    continue
                inside_member = True
                pending = inflater.unconsumed_tail
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
