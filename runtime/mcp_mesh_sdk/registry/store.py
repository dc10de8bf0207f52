"""Agents the registry knows, in SQLite (WAL), with status derived from heartbeat age.

An agent is `healthy` while its last heartbeat is at most `stale_after` seconds old, `stale`
after that, and deleted by `sweep()` once it has been stale for `retention` seconds more.
"now" is injectable so staleness can be tested without sleeping.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Clock = Callable[[], float]

HEALTHY = "healthy"
STALE = "stale"
STATUSES = (HEALTHY, STALE)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    version TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_heartbeat REAL NOT NULL
)
"""


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Agent:
    name: str
    host: str
    port: int
    version: str
    capabilities: tuple[str, ...]
    first_seen: float
    last_heartbeat: float
    status: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "host": self.host,
            "port": self.port,
            "version": self.version,
            "capabilities": list(self.capabilities),
            "first_seen": iso(self.first_seen),
            "last_heartbeat": iso(self.last_heartbeat),
            "status": self.status,
        }


class AgentStore:
    """Thread-safe access to the agents table; one connection guarded by a lock."""

    def __init__(
        self, path: Path | str, stale_after: float, retention: float, clock: Clock = time.time
    ) -> None:
        self.stale_after = stale_after
        self.retention = retention
        self.clock = clock
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def status_of(self, last_heartbeat: float, now: float) -> str:
        return HEALTHY if now - last_heartbeat <= self.stale_after else STALE

    def _row_to_agent(self, row: tuple[Any, ...], now: float) -> Agent:
        name, host, port, version, capabilities, first_seen, last_heartbeat = row
        return Agent(
            name=name,
            host=host,
            port=int(port),
            version=version,
            capabilities=tuple(json.loads(capabilities)),
            first_seen=first_seen,
            last_heartbeat=last_heartbeat,
            status=self.status_of(last_heartbeat, now),
        )

    def register(
        self, name: str, host: str, port: int, version: str, capabilities: list[str]
    ) -> Agent:
        """Add or refresh an agent; a re-registration keeps its first-seen time."""
        now = self.clock()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO agents VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
                " host=excluded.host, port=excluded.port, version=excluded.version,"
                " capabilities=excluded.capabilities, last_heartbeat=excluded.last_heartbeat",
                (name, host, port, version, json.dumps(capabilities), now, now),
            )
            row = db.execute("SELECT * FROM agents WHERE name = ?", (name,)).fetchone()
        return self._row_to_agent(row, now)

    def heartbeat(self, name: str) -> Agent | None:
        """Record a heartbeat; None when the agent is unknown (it should register again)."""
        now = self.clock()
        with self._transaction() as db:
            db.execute("UPDATE agents SET last_heartbeat = ? WHERE name = ?", (now, name))
            row = db.execute("SELECT * FROM agents WHERE name = ?", (name,)).fetchone()
        return None if row is None else self._row_to_agent(row, now)

    def deregister(self, name: str) -> bool:
        with self._transaction() as db:
            return db.execute("DELETE FROM agents WHERE name = ?", (name,)).rowcount > 0

    def list(
        self, status: str | None = None, name: str | None = None, version: str | None = None
    ) -> list[Agent]:
        """Agents ordered by name, filtered; rows past retention are never listed."""
        now = self.clock()
        query = "SELECT * FROM agents WHERE last_heartbeat >= ?"
        params: list[Any] = [now - self.stale_after - self.retention]
        if name:
            query += " AND name = ?"
            params.append(name)
        if version:
            query += " AND version = ?"
            params.append(version)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY name", params).fetchall()
        agents = [self._row_to_agent(row, now) for row in rows]
        return [agent for agent in agents if status is None or agent.status == status]

    def sweep(self) -> int:
        """Delete agents stale for longer than the retention period; return how many."""
        cutoff = self.clock() - self.stale_after - self.retention
        with self._transaction() as db:
            return db.execute("DELETE FROM agents WHERE last_heartbeat < ?", (cutoff,)).rowcount

    def ping(self) -> bool:
        """True when the database answers a query."""
        try:
            with self._lock:
                self._db.execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True
