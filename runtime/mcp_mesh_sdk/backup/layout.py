"""The reserved space at the front of an archive: the manifest member plus gzip filler.

The manifest is the archive's first member, but it needs every file's hash, so it is
written last into space reserved before the body. It goes there as a stored gzip member;
the rest of the space holds empty gzip members whose header carries an "extra" field of the
right length (RFC 1952 FEXTRA). Every gzip reader skips those, and they decompress to
nothing, so the tar stream stays intact. The manifest's HMAC member (`encryption.py`) follows
it in the same space.
"""

from __future__ import annotations

import json
import struct
import tarfile
import time
import zlib
from json.encoder import encode_basestring_ascii

from mcp_mesh_sdk.backup.encryption import MAC_NAME, BackupKey, manifest_mac
from mcp_mesh_sdk.backup.gzstream import GZIP_WBITS
from mcp_mesh_sdk.backup.manifest import MANIFEST_NAME, Manifest
from mcp_mesh_sdk.backup.tarstream import header

FILLER_OVERHEAD = 22  # gzip header 10 + XLEN 2 + empty deflate block 2 + CRC/ISIZE 8
MAX_EXTRA = 0xFFFF
ENTRY_SLACK = 32  # digits a file's size or mtime may gain between the scan and the read
HEAD_SLACK = 16 << 10  # warnings, roots, times


def filler(size: int) -> bytes:
    """Empty gzip members totalling exactly `size` bytes (0, or at least 22)."""
    if size and size < FILLER_OVERHEAD:
        raise ValueError(f"filler of {size} bytes is impossible (minimum {FILLER_OVERHEAD})")
    members = []
    while size:
        extra = min(MAX_EXTRA, size - FILLER_OVERHEAD)
        remainder = size - FILLER_OVERHEAD - extra
        if 0 < remainder < FILLER_OVERHEAD:
            extra -= FILLER_OVERHEAD  # leave room for one more member
        field = (
            b"MP" + struct.pack("<H", extra - 4) + bytes(extra - 4) if extra >= 4 else bytes(extra)
        )
        members.append(
            b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff"
            + struct.pack("<H", extra)
            + field
            + b"\x03\x00"  # an empty, final, fixed-Huffman deflate block
            + bytes(8)  # CRC32 and ISIZE of nothing
        )
        size -= FILLER_OVERHEAD + extra
    return b"".join(members)


def _member(name: str, data: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.mode, info.mtime, info.size = 0o600, int(time.time()), len(data)
    padding = -len(data) % tarfile.BLOCKSIZE
    return header(info) + data + bytes(padding)


def manifest_tar(manifest: Manifest, key: BackupKey) -> bytes:
    """The manifest as a tar member (header and padded data), then its HMAC as another."""
    data = manifest.to_bytes()
    return _member(MANIFEST_NAME, data) + _member(MAC_NAME, manifest_mac(key, data))


def stored_size_bound(raw: int) -> int:
    """An upper bound of a level-0 gzip member holding `raw` bytes (zlib's stored blocks)."""
    return raw + 5 * (raw // 4096 + 2) + 18


# One manifest line with every string empty and every number 0: the keys and punctuation.
_SKELETON = len(
    json.dumps(
        {"path": "", "type": "symlink", "mode": 0, "uid": 0, "gid": 0, "owner": "", "group": "",
         "mtime": 0, "size": 0, "sha256": "", "target": ""},
        sort_keys=True,
    )
)  # fmt: skip
_NUMBERS = 4 * 10 + 20 + 24  # mode, uid, gid, one more; size up to 20 digits; a float mtime


def entry_bound(path: str, owner: str, group: str, target_length: int) -> int:
    """Bytes one manifest line may take at most (a sha256 counted in full, 64)."""
    strings = sum(len(encode_basestring_ascii(text)) for text in (path, owner, group))
    target = 6 * target_length + 2  # every byte escaped as \uXXXX, at worst
    return _SKELETON + strings + target + 64 + _NUMBERS + 2 + ENTRY_SLACK


def reserve_for(entry_bounds: int) -> int:
    """Space to reserve for a manifest whose member lines take at most `entry_bounds`."""
    raw = tarfile.BLOCKSIZE * 4 + entry_bounds + HEAD_SLACK  # 2 headers, the HMAC, padding
    return stored_size_bound(raw) + FILLER_OVERHEAD


def region(manifest: Manifest, key: BackupKey, reserved: int) -> bytes | None:
    """Exactly `reserved` bytes: the manifest members then filler; None when they do not fit."""
    member = zlib.compress(manifest_tar(manifest, key), 0, GZIP_WBITS)
    rest = reserved - len(member)
    if rest < 0 or 0 < rest < FILLER_OVERHEAD:
        return None
    return member + filler(rest)
