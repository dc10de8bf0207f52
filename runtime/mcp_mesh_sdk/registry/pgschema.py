"""Versioned SQL migrations of the registry's PostgreSQL database (`registry/sql/NNNN_*.sql`).

`mcp-mesh-sdk migrate --registry-database` applies the pending ones in order, each in its own
transaction together with its row in `schema_migrations` (version, name, applied_at), so a
migration is applied entirely or not at all, and a second run finds nothing to do. A session
advisory lock lets only one migrate work at a time (two replicas upgraded at once wait in
turn). Migrations are forward-only and additive (expand, then contract in a later release),
so the previous release keeps working on the newer schema during a rolling upgrade.
"""

from __future__ import annotations

import importlib.resources
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mcp_mesh_sdk.errors import OpsError

if TYPE_CHECKING:
    import psycopg

SQL_PACKAGE = "mcp_mesh_sdk.registry"
SQL_DIR = "sql"
FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
MIGRATE_LOCK = 0x6D6573685F6D6967  # pg_advisory_lock key of `migrate` ("mesh_mig")
CONNECT_TIMEOUT = 10  # seconds

_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class SqlMigration:
    version: int
    name: str
    sql: str


@dataclass
class DatabaseOutcome:
    """Where the database stands after a run (the `--json` document)."""

    applied: list[int]
    available: list[SqlMigration]
    ran: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        known = {m.version for m in self.available}
        ids, done = available_ids(self.available), set(self.applied)
        return {
            "database": "registry",
            "schema_version": max(self.applied, default=0),
            "latest_schema_version": latest_version(self.available),
            "applied": [f"{v:04d}" for v in sorted(self.applied)],
            "pending": [
                i for m, i in zip(self.available, ids, strict=True) if m.version not in done
            ],
            "unknown": [f"{v:04d}" for v in sorted(set(self.applied) - known)],
            "ran": self.ran,
        }


def discover() -> list[SqlMigration]:
    """Every SQL migration shipped in the package, ordered by version."""
    found: list[SqlMigration] = []
    for entry in importlib.resources.files(SQL_PACKAGE).joinpath(SQL_DIR).iterdir():
        match = FILE_PATTERN.match(entry.name)
        if match is None:
            continue
        found.append(
            SqlMigration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8"))
        )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise OpsError(f"two registry SQL migrations share a number: {versions}")
    return found


def latest_version(available: list[SqlMigration] | None = None) -> int:
    """The schema version this release needs (and brings)."""
    return max((m.version for m in (discover() if available is None else available)), default=0)


def applied_versions(conn: psycopg.Connection[tuple[object, ...]]) -> list[int]:
    """Versions recorded in schema_migrations; [] when the table does not exist yet."""
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return []
    return [int(str(v)) for (v,) in conn.execute("SELECT version FROM schema_migrations")]


def _connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    import psycopg

    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
    except psycopg.Error as exc:
        raise OpsError(f"cannot connect to the registry database: {first_line(exc)}") from exc


def first_line(exc: BaseException) -> str:
    """The first line of a driver error (libpq's never holds the password)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def status(url: str) -> DatabaseOutcome:
    available = discover()
    with _connect(url) as conn:
        return DatabaseOutcome(applied_versions(conn), available)


def upgrade(url: str, to: int | None = None) -> DatabaseOutcome:
    """Apply pending migrations (up to version `to` when given); idempotent."""
    import psycopg

    available = discover()
    if to is not None and to != 0 and to not in {m.version for m in available}:
        raise OpsError(
            f"no registry SQL migration numbered {to}; known: {available_ids(available)}"
        )
    with _connect(url) as conn:
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK,))
            try:
                conn.execute(_TABLE)
                outcome = DatabaseOutcome(applied_versions(conn), available)
                for migration in available:
                    if migration.version in outcome.applied:
                        continue
                    if to is not None and migration.version > to:
                        break
                    label = f"{migration.version:04d}_{migration.name}"
                    try:
                        with conn.transaction():
                            conn.execute(migration.sql.encode())
                            conn.execute(
                                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                                (migration.version, migration.name),
                            )
                    except psycopg.Error as exc:
                        raise OpsError(
                            f"registry SQL migration {label} failed, nothing of it applied: "
                            f"{first_line(exc)}"
                        ) from exc
                    outcome.applied.append(migration.version)
                    outcome.ran.append(label)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK,))
        except psycopg.OperationalError as exc:
            raise OpsError(f"the registry database went away: {first_line(exc)}") from exc
    return outcome


def available_ids(available: list[SqlMigration]) -> list[str]:
    return [f"{m.version:04d}_{m.name}" for m in available]
