"""The backup directory: naming, listing, the verification cache, `latest`, and pruning.

Each archive may have a sidecar `<archive>.verify.json` with its sha256, the manifest summary
and the last verification outcome. It is trusted only while the archive's size and mtime are
the ones recorded, so `list` stays cheap and never reports a stale "verified".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.atomicfile import atomic_write_json
from mcp_mesh_sdk.backup.manifest import Manifest
from mcp_mesh_sdk.errors import OpsError

ARCHIVE_PREFIX = "mcp-mesh-"
ARCHIVE_SUFFIX = ".tar.gz"
SIDECAR_SUFFIX = ".verify.json"
OK, FAILED, UNKNOWN = "ok", "failed", "unknown"


class BackupNotFound(OpsError):
    exit_code = 2


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


_NAME_TIME = re.compile(r"(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)\.(\d{3})Z\.tar\.gz$")


def time_from_name(name: str) -> str | None:
    """The creation time a backup's name carries (for archives whose manifest is unreadable)."""
    match = _NAME_TIME.search(name)
    if match is None:
        return None
    y, mo, d, h, mi, s, ms = match.groups()
    return f"{y}-{mo}-{d}T{h}:{mi}:{s}.{ms}Z"


def _describe(archive: Path) -> BackupInfo:
    from mcp_mesh_sdk.backup.reader import read_manifest

    cached = read_sidecar(archive) or {}
    summary = cached.get("summary")
    outcome = cached.get("verified")
    verified = OK if outcome is True else FAILED if outcome is False else UNKNOWN
    if summary is None:
        try:
            manifest = read_manifest(archive)
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


def list_backups(backup_dir: Path) -> list[BackupInfo]:
    """Every archive in `backup_dir`, newest first."""
    try:
        names = [path.name for path in backup_dir.iterdir()]
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise OpsError(f"cannot list {backup_dir}: {exc.strerror or exc}") from exc
    archives = [
        backup_dir / name
        for name in names
        if name.startswith(ARCHIVE_PREFIX) and name.endswith(ARCHIVE_SUFFIX)
    ]
    found = [_describe(archive) for archive in archives]
    return sorted(found, key=lambda b: (b.created_at or "", b.name), reverse=True)


def resolve_archive(spec: str, backup_dir: Path) -> Path:
    """`latest`, a name in the backup directory, or a path."""
    if spec == "latest":
        backups = list_backups(backup_dir)
        if not backups:
            raise BackupNotFound(f"no backups in {backup_dir}")
        return backups[0].path
    candidate = Path(spec)
    if "/" not in spec:
        candidate = backup_dir / spec
        if not candidate.exists() and not spec.endswith(ARCHIVE_SUFFIX):
            candidate = backup_dir / (spec + ARCHIVE_SUFFIX)
    if not candidate.is_file():
        raise BackupNotFound(f"no backup {spec!r} (looked for {candidate})")
    return candidate


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


def _newest_verified(backups: list[BackupInfo]) -> BackupInfo | None:
    from mcp_mesh_sdk.backup.verify import verify_archive

    for backup in backups:  # newest first; verifies only what has no cached outcome
        if backup.verified == OK:
            return backup
        if backup.verified == UNKNOWN and verify_archive(backup.path).ok:
            return backup
    return None


def prune(
    backup_dir: Path,
    keep: int,
    max_age_days: float | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PruneResult:
    """Delete backups beyond the `keep` newest and, with `max_age_days`, those older.

    The newest backup that verifies is never deleted, whatever its rank or age.
    """
    if keep < 0:
        raise OpsError("--keep must be 0 or more")
    now = now or datetime.now(UTC)
    backups = list_backups(backup_dir)
    protected = _newest_verified(backups)
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
