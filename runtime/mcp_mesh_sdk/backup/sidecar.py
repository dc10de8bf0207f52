"""The verification cache beside each archive: `<archive>.verify.json`.

It holds the archive's sha256, the manifest summary and the last verification outcome, and is
trusted only while the archive's size and mtime are the ones recorded, so `list` stays cheap
and never reports a stale "verified".
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.atomicfile import atomic_write_json
from mcp_mesh_sdk.backup.manifest import Manifest

SIDECAR_SUFFIX = ".verify.json"


def sidecar_path(archive: Path) -> Path:
    return archive.with_name(archive.name + SIDECAR_SUFFIX)


def read_sidecar_raw(archive: Path) -> dict[str, Any]:
    """The sidecar as written, stale or not ({} when absent or unreadable)."""
    try:
        cached = json.loads(sidecar_path(archive).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return cached if isinstance(cached, dict) else {}


def write_sidecar(
    archive: Path,
    sha256: str | None,
    manifest: Manifest | None,
    verified: bool | None,
    created: bool = False,
) -> None:
    """Cache what is known about `archive`; a read-only backup directory is not an error.

    `created_sha256`, the archive's hash when `create` wrote it, is kept across rewrites so
    `verify` can tell that the archive's bytes changed even where its members still match.
    """
    created_sha256 = sha256 if created else read_sidecar_raw(archive).get("created_sha256")
    try:
        info = archive.stat()
        atomic_write_json(
            sidecar_path(archive),
            {
                "size": info.st_size,
                "mtime_ns": info.st_mtime_ns,
                "sha256": sha256,
                "created_sha256": created_sha256,
                "verified": verified,
                "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "summary": manifest.summary() if manifest else None,
            },
            mode=0o600,
        )
    except OSError:
        pass


def read_sidecar(archive: Path) -> dict[str, Any] | None:
    """The cached facts, or None when missing, unreadable or no longer about this file."""
    try:
        cached = json.loads(sidecar_path(archive).read_text(encoding="utf-8"))
        info = archive.stat()
    except (OSError, ValueError):
        return None
    if not isinstance(cached, dict):
        return None
    if cached.get("size") != info.st_size or cached.get("mtime_ns") != info.st_mtime_ns:
        return None
    return cached
