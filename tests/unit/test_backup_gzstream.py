import gzip
import io
import os
import subprocess
import zlib

import pytest

from mcp_mesh_sdk.backup.gzstream import (
    CHUNK,
    INFLATE_ERRORS,
    ParallelGzipWriter,
    PipelinedGzipReader,
)


def write_all(data: bytes, level: int = 1) -> bytes:
    out = io.BytesIO()
    writer = ParallelGzipWriter(out, level=level, workers=2)
    view = memoryview(data)
    for start in range(0, len(data), 100_003):  # odd-sized writes straddle chunks
        writer.write(view[start : start + 100_003])
    writer.close()
    return out.getvalue()


def test_multi_member_output_is_one_valid_gzip_stream() -> None:
    data = b"mesh agent registry " * 500_000 + os.urandom(3 * CHUNK)
    blob = write_all(data)
    assert gzip.decompress(blob) == data
    unzipped = subprocess.run(["gzip", "-dc"], input=blob, capture_output=True, check=True)
    assert unzipped.stdout == data


def test_incompressible_chunks_are_stored_not_deflated() -> None:
    data = os.urandom(2 * CHUNK)
    blob = write_all(data, level=6)
    assert len(blob) < len(data) * 1.001  # stored: only headers on top


def read_all(blob: bytes) -> tuple[bytes, int]:
    reader = PipelinedGzipReader(io.BytesIO(blob), read_size=65536, depth=2)
    try:
        return io.BufferedReader(reader).read(), reader.size
    finally:
        reader.close()


def test_pipelined_reader_round_trip_and_hashes_the_raw_bytes() -> None:
    data = os.urandom(CHUNK) + b"x" * (3 * CHUNK)
    blob = write_all(data)
    out, size = read_all(blob)
    assert out == data
    assert size == len(blob)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_pipelined_reader_raises_on_damage(damage) -> None:
    blob = bytearray(write_all(os.urandom(CHUNK // 2) + b"y" * CHUNK))
    if damage == "truncate":
        blob = blob[:-10]
    elif damage == "flip":
        blob[len(blob) // 3] ^= 0x10
    else:
        blob += b"not gzip"
    with pytest.raises((EOFError, *INFLATE_ERRORS)):
        read_all(bytes(blob))


def test_adaptive_writer_stores_what_busy_compressors_cannot_take(monkeypatch) -> None:
    import time

    from mcp_mesh_sdk.backup import gzstream

    real = gzstream.compress_chunk

    def slow(chunk, level):
        if level > 0:
            time.sleep(0.2)  # a compressor far slower than the stream
        return real(chunk, level)

    monkeypatch.setattr(gzstream, "compress_chunk", slow)
    data = b"compressible text " * (6 * CHUNK // 18)
    for adaptive in (True, False):
        out = io.BytesIO()
        writer = ParallelGzipWriter(out, level=1, workers=1, adaptive=adaptive)
        writer.write(data)
        writer.close()
        assert gzip.decompress(out.getvalue()) == data
        assert (writer.stored_for_speed > 0) is adaptive


@pytest.mark.parametrize("size", [0, 1, 0xFFFF, 0x10000, CHUNK + 3])
def test_stored_members_framed_by_hand_read_as_zlibs(size: int) -> None:
    """Stored chunks skip zlib's level 0: gzip -t, zlib and the stdlib read them the same."""
    from mcp_mesh_sdk.backup.gzstream import stored_member

    data = os.urandom(size)
    member = stored_member(data)
    assert len(member) <= len(data) + 5 * (size // 0xFFFF + 1) + 18  # no deflate, just frames
    assert gzip.decompress(member + member) == data + data  # a member among others
    assert zlib.decompress(member, 31) == data
    checked = subprocess.run(["gzip", "-t"], input=member, capture_output=True, check=False)
    assert checked.returncode == 0, checked.stderr
    damaged = bytearray(member)
    damaged[-8] ^= 1  # the CRC
    with pytest.raises(zlib.error):
        zlib.decompress(bytes(damaged), 31)
