"""Apply and roll back state migrations (`mcp_mesh_sdk.migrations`).

The applied list is `<state_dir>/applied_migrations.json` (the spec's name and shape: a JSON
list of migration ids), rewritten atomically after every step, so after a failure it still
says exactly what was applied. The state schema version is the number of the highest applied
migration (0 for none); backups record it and refuse to restore state newer than this runtime
knows. Only one `migrate` runs at a time per state directory (flock).
"""

from __future__ import annotations

import fcntl
import importlib
import json
import logging
import os
import pkgutil
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from mcp_mesh_sdk.atomicfile import atomic_write_json, open_lock_file
from mcp_mesh_sdk.errors import OpsError

log = logging.getLogger("mcp_mesh_sdk.migrate")

APPLIED_FILE = "applied_migrations.json"
LOCK_FILE = ".migrate.lock"
PACKAGE = "mcp_mesh_sdk.migrations"
ID_PATTERN = re.compile(r"^(\d{4})_[a-z0-9_]+$")


class MigrationFailed(OpsError):
    exit_code = 1


@dataclass(frozen=True)
class Migration:
    id: str
    description: str
    up: Callable[[Path], None]
    down: Callable[[Path], None]

    @property
    def version(self) -> int:
        return version_of(self.id)


@dataclass
class Outcome:
    """What a run did, and where the state stands afterwards (the `--json` document)."""

    state_dir: Path
    applied: list[str]
    available: list[Migration]
    ran: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "state_dir": str(self.state_dir),
            "schema_version": schema_version_of(self.applied),
            "latest_schema_version": max((m.version for m in self.available), default=0),
            "applied": list(self.applied),
            "pending": [m.id for m in self.available if m.id not in self.applied],
            "ran": self.ran,
        }


def version_of(migration_id: str) -> int:
    match = ID_PATTERN.match(migration_id)
    if match is None:
        raise OpsError(f"{migration_id!r} is not a migration id like 0001_name")
    return int(match.group(1))


def schema_version_of(applied: list[str]) -> int:
    return max((version_of(i) for i in applied if ID_PATTERN.match(i)), default=0)


def _as_migration(module: ModuleType) -> Migration:
    try:
        migration = Migration(
            id=module.ID, description=module.DESCRIPTION, up=module.up, down=module.down
        )
    except AttributeError as exc:
        raise OpsError(f"migration module {module.__name__} lacks {exc.name}") from exc
    version_of(migration.id)
    return migration


def discover(package: str = PACKAGE) -> list[Migration]:
    """Every migration module in `package`, ordered by id."""
    root = importlib.import_module(package)
    modules = [
        importlib.import_module(f"{package}.{info.name}")
        for info in pkgutil.iter_modules(root.__path__)
        if not info.name.startswith("_")
    ]
    migrations = sorted((_as_migration(m) for m in modules), key=lambda m: m.id)
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise OpsError(f"two migrations share a number in {package}: {[m.id for m in migrations]}")
    return migrations


def latest_schema_version(package: str = PACKAGE) -> int:
    """The highest schema version this runtime can produce (and so restore)."""
    return max((m.version for m in discover(package)), default=0)


def read_applied(state_dir: Path) -> list[str]:
    path = state_dir / APPLIED_FILE
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise OpsError(f"cannot read {path}: {exc}") from exc
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise OpsError(f"{path} must hold a JSON list of migration ids")
    return value


def schema_version(state_dir: Path) -> int:
    """The state schema version of `state_dir` (0 when nothing was ever applied)."""
    return schema_version_of(read_applied(state_dir))


@contextmanager
def _exclusive(state_dir: Path) -> Iterator[None]:
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        handle = open_lock_file(state_dir / LOCK_FILE)
    except OSError as exc:
        raise OpsError(f"cannot lock {state_dir}: {exc.strerror or exc}") from exc
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise OpsError(f"another migrate is running on {state_dir}") from exc
        yield
    finally:
        os.close(handle)


def _target(available: list[Migration], to: str | None) -> int | None:
    if to is None:
        return None
    wanted = to.strip()
    if wanted.isdigit():
        number = int(wanted)
        if number != 0 and number not in {m.version for m in available}:
            raise OpsError(f"no migration numbered {wanted}; known: {[m.id for m in available]}")
        return number
    for migration in available:
        if migration.id == wanted:
            return migration.version
    raise OpsError(f"no migration {wanted!r}; known: {[m.id for m in available]}")


def status(state_dir: Path, package: str = PACKAGE) -> Outcome:
    return Outcome(state_dir, read_applied(state_dir), discover(package))


def upgrade(state_dir: Path, to: str | None = None, package: str = PACKAGE) -> Outcome:
    """Apply pending migrations in order, up to `to` (an id or a number) when given."""
    available = discover(package)
    target = _target(available, to)
    with _exclusive(state_dir):
        applied = read_applied(state_dir)
        _refuse_unknown(applied, available, state_dir)
        outcome = Outcome(state_dir, applied, available)
        for migration in available:
            if migration.id in applied or (target is not None and migration.version > target):
                continue
            _step(state_dir, migration, "up", outcome)
            applied.append(migration.id)
            atomic_write_json(state_dir / APPLIED_FILE, sorted(applied))
        outcome.applied = sorted(applied)
        return outcome


def rollback(state_dir: Path, to: str | None = None, package: str = PACKAGE) -> Outcome:
    """Undo applied migrations newer than `to`, newest first; without `to`, the last one."""
    available = discover(package)
    target = _target(available, to)
    with _exclusive(state_dir):
        applied = read_applied(state_dir)
        _refuse_unknown(applied, available, state_dir)
        outcome = Outcome(state_dir, applied, available)
        newest_first = [m for m in reversed(available) if m.id in applied]
        chosen = (
            newest_first[:1] if target is None else [m for m in newest_first if m.version > target]
        )
        for migration in chosen:
            _step(state_dir, migration, "down", outcome)
            applied.remove(migration.id)
            atomic_write_json(state_dir / APPLIED_FILE, sorted(applied))
        outcome.applied = sorted(applied)
        return outcome


def _refuse_unknown(applied: list[str], available: list[Migration], state_dir: Path) -> None:
    unknown = sorted(set(applied) - {m.id for m in available})
    if unknown:
        raise OpsError(
            f"{state_dir} has migrations this runtime does not know ({', '.join(unknown)}): "
            "it was migrated by a newer release; roll back with that release first"
        )


def _step(state_dir: Path, migration: Migration, direction: str, outcome: Outcome) -> None:
    action = migration.up if direction == "up" else migration.down
    log.info(f"migration {migration.id} {direction}: {migration.description}")
    try:
        action(state_dir)
    except Exception as exc:
        raise MigrationFailed(
            f"migration {migration.id} failed ({direction}): {type(exc).__name__}: {exc}; "
            f"applied migrations are still recorded in {state_dir / APPLIED_FILE}"
        ) from exc
    outcome.ran.append({"id": migration.id, "direction": direction})
