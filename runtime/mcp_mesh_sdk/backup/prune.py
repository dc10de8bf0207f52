"""`backup prune`: delete old backups, never the newest one that verifies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.backup.catalog import OK, UNKNOWN, BackupInfo, list_backups
from mcp_mesh_sdk.backup.encryption import BackupKey
from mcp_mesh_sdk.backup.names import ARCHIVE_PREFIX
from mcp_mesh_sdk.backup.sidecar import sidecar_path
from mcp_mesh_sdk.backup.verify import verify_archive
from mcp_mesh_sdk.errors import OpsError

STALE_TEMPORARY = timedelta(days=1)


@dataclass
class PruneResult:
    kept: list[BackupInfo]
    deleted: list[BackupInfo]
    protected: str | None  # the newest verified backup, never deleted
    temporaries: list[str]  # left by a `create` that was killed

    def to_json(self) -> dict[str, Any]:
        return {
            "kept": [b.name for b in self.kept],
            "deleted": [b.name for b in self.deleted],
            "newest_verified": self.protected,
            "removed_temporaries": self.temporaries,
        }


def _stale_temporaries(backup_dir: Path, now: datetime) -> list[Path]:
    """`.mcp-mesh-*.tmp` files untouched for a day: a running `create` keeps writing its own."""
    if not backup_dir.is_dir():
        return []
    found = []
    for path in backup_dir.iterdir():
        if path.name.startswith("." + ARCHIVE_PREFIX) and path.name.endswith(".tmp"):
            modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            if now - modified > STALE_TEMPORARY:
                found.append(path)
    return sorted(found)


def _newest_verified(backups: list[BackupInfo], key: BackupKey | None) -> BackupInfo | None:
    for backup in backups:  # newest first; verifies only what has no cached outcome
        if backup.verified == OK:
            return backup
        if backup.verified == UNKNOWN and verify_archive(backup.path, key).ok:
            return backup
    return None


def prune(
    backup_dir: Path,
    keep: int,
    max_age_days: float | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    key: BackupKey | None = None,
) -> PruneResult:
    """Delete backups beyond the `keep` newest and, with `max_age_days`, those older.

    The newest backup that verifies is never deleted, whatever its rank or age.
    """
    if keep < 0:
        raise OpsError("--keep must be 0 or more")
    now = now or datetime.now(UTC)
    backups = list_backups(backup_dir, key)
    protected = _newest_verified(backups, key)
    kept: list[BackupInfo] = []
    deleted: list[BackupInfo] = []
    for rank, backup in enumerate(backups):
        age = backup.age(now)
        too_old = (
            max_age_days is not None
            and age is not None
            and age.total_seconds() > max_age_days * 86400
        )
        if backup is not protected and (rank >= keep or too_old):
            deleted.append(backup)
        else:
            kept.append(backup)
    temporaries = _stale_temporaries(backup_dir, now)
    if not dry_run:
        for backup in deleted:
            backup.path.unlink(missing_ok=True)
            sidecar_path(backup.path).unlink(missing_ok=True)
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)
    names = [t.name for t in temporaries]
    return PruneResult(kept, deleted, protected.name if protected else None, names)
