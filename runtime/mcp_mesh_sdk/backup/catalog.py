"""The backup directory: the archives' names, listing them newest first, and `latest`.

What a listing says about an archive comes from its sidecar (`sidecar.py`) while that is
current, else from the archive's manifest (read with the backup identity, its HMAC checked).
Archives are `<name>.tar.gz.age`; legacy ones, from before encryption, `<name>.tar.gz`.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.backup.encryption import BackupKey, IdentityNeeded
from mcp_mesh_sdk.backup.names import ARCHIVE_PREFIX, SUFFIXES, time_from_name
from mcp_mesh_sdk.backup.reader import read_manifest
from mcp_mesh_sdk.backup.sidecar import read_sidecar, write_sidecar
from mcp_mesh_sdk.errors import OpsError

OK, FAILED, UNKNOWN = "ok", "failed", "unknown"


def this_host() -> str:
    """The short host name: the one an archive's name carries."""
    return socket.gethostname().split(".", 1)[0]


class BackupNotFound(OpsError):
    exit_code = 2


@dataclass(frozen=True)
class BackupInfo:
    name: str
    path: Path
    size: int
    created_at: str | None
    agent_version: str | None
    schema_version: int | None
    verified: str  # ok | failed | unknown
    sha256: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "time": self.created_at,
            "size": self.size,
            "version": self.agent_version,
            "schema_version": self.schema_version,
            "verified": self.verified,
            "sha256": self.sha256,
        }

    def age(self, now: datetime) -> timedelta | None:
        if not self.created_at:
            return None
        return now - datetime.fromisoformat(self.created_at.replace("Z", "+00:00"))


def _describe(archive: Path, key: BackupKey | None) -> BackupInfo:
    cached = read_sidecar(archive) or {}
    summary = cached.get("summary")
    outcome = cached.get("verified")
    verified = OK if outcome is True else FAILED if outcome is False else UNKNOWN
    if summary is None:
        try:
            manifest = read_manifest(archive, key)
        except IdentityNeeded:
            summary = {}
        except OpsError:
            summary, verified = {}, FAILED
        else:
            summary = manifest.summary()
            if not cached:
                write_sidecar(archive, None, manifest, verified=None)
    return BackupInfo(
        name=archive.name,
        path=archive,
        size=archive.stat().st_size,
        created_at=summary.get("created_at") or time_from_name(archive.name),
        agent_version=summary.get("agent_version"),
        schema_version=summary.get("schema_version"),
        verified=verified,
        sha256=cached.get("sha256"),
    )


def list_backups(backup_dir: Path, key: BackupKey | None) -> list[BackupInfo]:
    """Every archive in `backup_dir`, newest first (`key` reads manifests no sidecar holds)."""
    try:
        names = [path.name for path in backup_dir.iterdir()]
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise OpsError(f"cannot list {backup_dir}: {exc.strerror or exc}") from exc
    archives = [
        backup_dir / name
        for name in names
        if name.startswith(ARCHIVE_PREFIX) and name.endswith(SUFFIXES)
    ]
    found = [_describe(archive, key) for archive in archives]
    return sorted(found, key=lambda b: (b.created_at or "", b.name), reverse=True)


def resolve_archive(spec: str, backup_dir: Path, key: BackupKey | None) -> Path:
    """`latest`, a name in the backup directory (its suffix may be left out), or a path."""
    if spec == "latest":
        backups = list_backups(backup_dir, key)
        if not backups:
            raise BackupNotFound(f"no backups in {backup_dir}")
        return backups[0].path
    candidate = Path(spec)
    if "/" not in spec:
        named = [backup_dir / spec]
        if not spec.endswith(SUFFIXES):
            named += [backup_dir / (spec + suffix) for suffix in SUFFIXES]
        candidate = next((path for path in named if path.exists()), named[0])
    if not candidate.is_file():
        raise BackupNotFound(f"no backup {spec!r} (looked for {candidate})")
    return candidate
