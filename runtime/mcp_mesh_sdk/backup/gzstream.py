"""A gzip writer that compresses on every core: each chunk becomes its own gzip member.

Concatenated gzip members are one valid gzip stream (RFC 1952), so `tar xzf`, `gzip -d` and
Python's `gzip`/`tarfile` read the result unchanged. zlib releases the GIL, so a thread pool is
enough for parallelism. Chunks whose sample does not compress are stored (level 0), which costs
a copy instead of a slow, useless deflate. Memory stays bounded: at most `2 x workers` chunks
are in flight.
"""

from __future__ import annotations

import os
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

CHUNK = 4 << 20
SAMPLE = 64 << 10
INCOMPRESSIBLE = 0.9  # a sample that shrinks less than 10 % means: store this chunk
GZIP_WBITS = 31


def compress_chunk(chunk: bytes, level: int) -> bytes:
    """One gzip member holding `chunk`."""
    if level > 0 and len(chunk) > SAMPLE:
        sample = chunk[:SAMPLE]
        if len(zlib.compress(sample, level)) > INCOMPRESSIBLE * len(sample):
            level = 0
    return zlib.compress(chunk, level, GZIP_WBITS)


class ParallelGzipWriter:
    """File-like `write()` target; compressed bytes go to `out`, each block also to `observe`."""

    def __init__(
        self,
        out: BinaryIO,
        level: int = 1,
        workers: int | None = None,
        observe: Callable[[bytes], None] | None = None,
    ) -> None:
        self.out = out
        self.level = level
        self.observe = observe
        self.workers = workers or min(4, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="gzip")
        self._pending: deque[Future[bytes]] = deque()
        self._buffer = bytearray()
        self.bytes_in = 0
        self.bytes_out = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._buffer += data
        if len(self._buffer) >= CHUNK:
            self._submit(bytes(self._buffer))
            self._buffer.clear()
        return len(data)

    def _submit(self, chunk: bytes) -> None:
        self.bytes_in += len(chunk)
        self._pending.append(self._pool.submit(compress_chunk, chunk, self.level))
        while len(self._pending) > 2 * self.workers:
            self._emit(self._pending.popleft().result())

    def _emit(self, block: bytes) -> None:
        self.out.write(block)
        self.bytes_out += len(block)
        if self.observe is not None:
            self.observe(block)

    def close(self) -> None:
        """Compress what is buffered and write every pending member, in order."""
        try:
            if self._buffer:
                self._submit(bytes(self._buffer))
                self._buffer.clear()
            while self._pending:
                self._emit(self._pending.popleft().result())
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
