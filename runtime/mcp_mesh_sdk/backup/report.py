"""`backup report`: every backup of a host verified, one row each, and a verdict.

The verdict passes when every backup verifies, the host's own and its copies elsewhere (the
controller's, under `backups/<host>/`), and the host's newest backup is younger than the limit.
Copies count for "verifies" only: a host that lost its backups fails however fresh its copies.

A report made on the host can be completed elsewhere: `merge_report` takes its JSON, verifies
the copies there, and judges all rows together, with the ages measured again at that moment.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.backup.catalog import BackupInfo, list_backups, this_host
from mcp_mesh_sdk.backup.encryption import BackupKey
from mcp_mesh_sdk.backup.verify import VerifyReport, verify_archive
from mcp_mesh_sdk.errors import OpsError

HOST, COPY = "host", "copy"  # where a backup lies: the host's backup directory, or a copy
DEFAULT_MAX_AGE_HOURS = 26.0  # a daily backup, plus two hours of slack


def age_hours(created_at: str | None, now: datetime) -> float | None:
    if not created_at:
        return None
    try:
        created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
        return round((now - created).total_seconds() / 3600, 2)
    except (ValueError, TypeError):  # unparseable, or a time without its zone
        return None


@dataclass(frozen=True)
class Row:
    host: str
    location: str  # HOST or COPY
    backup: str
    path: str
    created_at: str | None
    age_hours: float | None
    size: int | None
    verified: bool
    problem: str  # why it does not verify; "" when it does
    encrypted: bool | None = None  # False: a legacy archive, unencrypted and unauthenticated

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _problem(report: VerifyReport) -> str:
    """The first thing wrong with the archive, and how many more there are."""
    problems = report.problems()
    if not problems:
        return ""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return problems[0] + more


def _verified_row(
    info: BackupInfo, host: str, location: str, now: datetime, key: BackupKey | None
) -> Row:
    report = verify_archive(info.path, key)
    created_at = report.manifest.created_at if report.manifest else info.created_at
    return Row(
        host=host,
        location=location,
        backup=info.name,
        path=str(info.path),
        created_at=created_at,
        age_hours=age_hours(created_at, now),
        size=info.size,
        verified=report.ok,
        problem=_problem(report),
        encrypted=report.encrypted,
    )


def verify_directory(
    directory: Path, host: str, location: str, now: datetime, key: BackupKey | None
) -> list[Row]:
    """One row per archive in `directory` (none when it does not exist), newest first."""
    backups = list_backups(directory, key)
    return [_verified_row(info, host, location, now, key) for info in backups]


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str  # one line, starting with the host
    newest: Row | None  # the host's newest backup
    not_verified: list[str]

    def to_json(self) -> dict[str, Any]:
        newest = self.newest
        return {
            "ok": self.ok,
            "message": self.message,
            "newest": newest.backup if newest else None,
            "newest_age_hours": newest.age_hours if newest else None,
            "not_verified": self.not_verified,
        }


def judge(host: str, rows: list[Row], backup_dir: str, max_age_hours: float) -> Verdict:
    not_verified = list(dict.fromkeys(row.backup for row in rows if not row.verified))
    own = [row for row in rows if row.location == HOST]
    newest = max(own, key=lambda row: (row.created_at or "", row.backup), default=None)
    problems = []
    if not_verified:
        problems.append("backups that do not verify: " + ", ".join(not_verified))
    if newest is None:
        problems.append(f"no backups in {backup_dir}")
    elif newest.age_hours is None:
        problems.append(f"newest backup {newest.backup} has no readable creation time")
    elif newest.age_hours > max_age_hours:
        problems.append(
            f"newest backup {newest.backup} is {newest.age_hours:.1f} h old "
            f"(limit {max_age_hours:g} h)"
        )
    if problems or newest is None or newest.age_hours is None:
        return Verdict(False, f"{host}: " + "; ".join(problems), newest, not_verified)
    message = (
        f"{host}: every backup verifies ({len(rows)}); newest {newest.backup}, "
        f"{newest.age_hours:.1f} h old"
    )
    return Verdict(True, message, newest, not_verified)


@dataclass(frozen=True)
class BackupReport:
    host: str
    backup_dir: str
    copies: list[str]
    max_age_hours: float
    checked_at: str
    rows: list[Row]
    verdict: Verdict

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "backup_dir": self.backup_dir,
            "copies": self.copies,
            "max_age_hours": self.max_age_hours,
            "checked_at": self.checked_at,
            "rows": [row.to_json() for row in self.rows],
            "verdict": self.verdict.to_json(),
        }


def _report(
    host: str,
    backup_dir: str,
    own: list[Row],
    copies: list[Path],
    max_age: float,
    now: datetime,
    key: BackupKey | None,
) -> BackupReport:
    if max_age <= 0:
        raise OpsError("--max-age-hours must be more than 0")
    rows = own + [row for copy in copies for row in verify_directory(copy, host, COPY, now, key)]
    return BackupReport(
        host=host,
        backup_dir=backup_dir,
        copies=[str(copy) for copy in copies],
        max_age_hours=max_age,
        checked_at=now.isoformat(timespec="seconds"),
        rows=rows,
        verdict=judge(host, rows, backup_dir, max_age),
    )


def make_report(
    backup_dir: Path,
    copies: list[Path],
    host: str | None = None,
    max_age_hours: float = DEFAULT_MAX_AGE_HOURS,
    now: datetime | None = None,
    key: BackupKey | None = None,
) -> BackupReport:
    """Verify every backup in `backup_dir` and in each of `copies`, and judge them."""
    now = now or datetime.now(UTC)
    host = host or this_host()
    own = verify_directory(backup_dir, host, HOST, now, key)
    return _report(host, str(backup_dir), own, copies, max_age_hours, now, key)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _row_from_json(item: Any, host: str, now: datetime) -> Row:
    if not isinstance(item, dict) or not isinstance(item.get("backup"), str):
        raise OpsError(f"a row of the given report names no backup: {item!r:.80}")
    if not isinstance(item.get("verified"), bool):
        raise OpsError(f"row {item['backup']}: 'verified' must be true or false")
    size = item.get("size")
    encrypted = item.get("encrypted")
    created_at = _text(item.get("created_at"))
    return Row(
        host=_text(item.get("host")) or host,
        location=COPY if item.get("location") == COPY else HOST,
        backup=item["backup"],
        path=_text(item.get("path")) or item["backup"],
        created_at=created_at,
        age_hours=age_hours(created_at, now),
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        verified=item["verified"],
        problem=_text(item.get("problem")) or ("" if item["verified"] else "did not verify"),
        encrypted=encrypted if isinstance(encrypted, bool) else None,
    )


def merge_report(
    document: Any,
    copies: list[Path],
    max_age_hours: float = DEFAULT_MAX_AGE_HOURS,
    now: datetime | None = None,
    key: BackupKey | None = None,
) -> BackupReport:
    """The rows of a report made elsewhere (`backup report --json`), plus `copies` verified here
    (`key` opens them)."""
    if not isinstance(document, dict) or not isinstance(document.get("rows"), list):
        raise OpsError("the given report is not what `backup report --json` prints (no rows)")
    now = now or datetime.now(UTC)
    host = _text(document.get("host")) or this_host()
    own = [_row_from_json(item, host, now) for item in document["rows"]]
    backup_dir = _text(document.get("backup_dir")) or "the host's backup directory"
    return _report(host, backup_dir, own, copies, max_age_hours, now, key)
