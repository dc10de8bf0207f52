"""Figures Prometheus alerts on that the agent reads from disk at scrape time: when the newest
backup archive was made (and, with `certificates.CertificateExpiry`, when the certificate it
serves expires).

The backup job (`backup create`, started by the backup timer) renames an archive into the
backup directory only once it is complete and fsynced, so the newest archive there IS the last
successful backup; its name carries the time it was made (`backup.names.time_from_name`).
Reading the directory at scrape time needs no state shared with the job and no extra exporter:
the agent's own /metrics carries it, and stops carrying a stale value when the archives go away.
Only backup.names is imported: the archive code (age, gzip, manifests) stays out of the agent.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from mcp_mesh_sdk.backup.names import ARCHIVE_PREFIX, SUFFIXES, time_from_name


def newest_backup_time(backup_dir: Path) -> float | None:
    """Unix time the newest archive in `backup_dir` was made; None when there is none (or the
    directory cannot be read). The time the name carries, else the file's mtime."""
    try:
        names = [path.name for path in backup_dir.iterdir()]
    except OSError:
        return None
    newest: float | None = None
    for name in names:
        if not (name.startswith(ARCHIVE_PREFIX) and name.endswith(SUFFIXES)):
            continue
        stamp = time_from_name(name)
        if stamp is not None:
            made = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        else:
            try:
                made = (backup_dir / name).stat().st_mtime
            except OSError:
                continue
        newest = made if newest is None else max(newest, made)
    return newest
