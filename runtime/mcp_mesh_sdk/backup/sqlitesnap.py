"""Consistent copies of live SQLite databases (the registry's), for the backup stream.

Copying a database file while a process writes it, and its `-wal` file a moment later, can
capture a state that never existed. SQLite's online backup API produces a consistent copy;
the archive holds that copy under the database's own name and leaves out `-wal`, `-shm` and
`-journal` files, which a restored database does not need.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

HEADER = b"SQLite format 3\x00"
COMPANIONS = ("-wal", "-shm", "-journal")


def is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(len(HEADER)) == HEADER
    except OSError:
        return False


def is_companion(path: Path) -> bool:
    """A `-wal`/`-shm`/`-journal` file next to a SQLite database."""
    for suffix in COMPANIONS:
        if path.name.endswith(suffix):
            base = path.with_name(path.name[: -len(suffix)])
            return base.is_file() and is_sqlite(base)
    return False


def snapshot(database: Path, copy: Path) -> None:
    """Write a consistent copy of `database` to `copy` (raises sqlite3.Error)."""
    source = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        target = sqlite3.connect(copy)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
        finally:
            target.close()
    finally:
        source.close()
