"""Agents the registry knows, with status derived from heartbeat age.

`RegistryStore` is the one interface the API uses; it has two backends: `AgentStore` here,
SQLite (WAL), the embedded default (one registry process), and `PostgresStore`
(registry/pgstore.py), used when a database URL is set, for replicas writing at once.
A backend raises `StoreUnavailable` when its database cannot answer; the API then says 503.

An agent is `healthy` while its last heartbeat is at most `stale_after` seconds old, `stale`
after that, and deleted by `sweep()` once it has been stale for `retention` seconds more.
"now" is injectable so staleness can be tested without sleeping.

Each name may be bound to its agent's key (`agent_keys`: the SHA-256 of the key, never the
key). The binding is made by the first registration that presents a key; from then on a
registration, heartbeat or deregistration of that name without that key raises `NotYours`.
Bindings outlive the entry (deregistration and the sweep keep them): only `forget()` drops one.
The table is separate from `agents`, so an older release keeps reading and writing the same
database; entries without a binding (older agents) are bound at their next keyed registration.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

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
_KEYS_SCHEMA = """
CREATE TABLE IF NOT EXISTS agent_keys (
    name TEXT PRIMARY KEY,
    key_sha256 TEXT NOT NULL,
    bound_at REAL NOT NULL
)
"""
_SELECT_AGENTS = (
    "SELECT a.name, a.host, a.port, a.version, a.capabilities, a.first_seen, a.last_heartbeat,"
    " k.name IS NOT NULL FROM agents a LEFT JOIN agent_keys k ON k.name = a.name"
)


class NotYours(Exception):
    """The name is bound to an agent key the call did not present; the message says why."""

    def __init__(self, name: str, *, key_missing: bool) -> None:
        why = "this call carries none" if key_missing else "this call carries another"
        message = (
            f"agent {name!r} is bound to an agent key and {why}: only that agent can change its "
            f"entry (to bind the name anew, e.g. its host was rebuilt and lost the key, run "
            f"`mcp-mesh-sdk registry forget {name}` on the registry host)"
        )
        super().__init__(message)
        self.key_missing = key_missing


class StoreUnavailable(Exception):
    """The database cannot answer now (down, unreachable, not migrated); the message says
    why in one line, without the URL or its password."""


def agent_from_row(
    row: tuple[Any, ...], capabilities: list[str], now: float, stale_after: float
) -> Agent:
    """An `Agent` from a row of either backend's agent query (its capabilities decoded)."""
    name, host, port, version, _, first_seen, last_heartbeat, bound = row
    last_heartbeat = float(last_heartbeat)
    return Agent(
        name=name,
        host=host,
        port=int(port),
        version=version,
        capabilities=tuple(capabilities),
        first_seen=float(first_seen),
        last_heartbeat=last_heartbeat,
        status=HEALTHY if now - last_heartbeat <= stale_after else STALE,
        bound=bool(bound),
    )


def refuse_unless_bound_to(stored_digest: str, name: str, key: str | None) -> None:
    """Raise NotYours unless `key` is the key whose digest `name` is bound to."""
    if key is None:
        raise NotYours(name, key_missing=True)
    if not hmac.compare_digest(stored_digest, key_digest(key)):
        raise NotYours(name, key_missing=False)


def key_digest(key: str) -> str:
    """What the store keeps of an agent key: its SHA-256, hex (the key is random, 256 bits)."""
    return hashlib.sha256(key.encode()).hexdigest()


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
    bound: bool = False  # the name is bound to an agent key

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
            "bound": self.bound,
        }


class RegistryStore(Protocol):
    """What the registry needs of its storage; every write is atomic on its own."""

    stale_after: float
    retention: float

    def register(
        self,
        name: str,
        host: str,
        port: int,
        version: str,
        capabilities: list[str],
        key: str | None = None,
    ) -> Agent: ...

    def heartbeat(self, name: str, key: str | None = None) -> Agent | None: ...

    def deregister(self, name: str, key: str | None = None) -> bool: ...

    def forget(self, name: str) -> tuple[bool, bool]: ...

    def list(
        self, status: str | None = None, name: str | None = None, version: str | None = None
    ) -> list[Agent]: ...

    def sweep(self) -> int: ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...


class AgentStore:
    """The SQLite backend: thread-safe, one connection guarded by a lock."""

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
        self._db.execute(_KEYS_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, _unavailable_on_error():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _row_to_agent(self, row: tuple[Any, ...], now: float) -> Agent:
        return agent_from_row(row, json.loads(row[4]), now, self.stale_after)

    def _one(self, db: sqlite3.Connection, name: str) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = db.execute(
            f"{_SELECT_AGENTS} WHERE a.name = ?", (name,)
        ).fetchone()
        return row

    def _check_key(
        self, db: sqlite3.Connection, name: str, key: str | None, *, bind: bool = False
    ) -> None:
        """Raise NotYours unless `key` is the one `name` is bound to; an unbound name is
        bound to `key` when `bind` (a registration) and a key is given."""
        row = db.execute("SELECT key_sha256 FROM agent_keys WHERE name = ?", (name,)).fetchone()
        if row is None:
            if bind and key is not None:
                db.execute(
                    "INSERT INTO agent_keys VALUES (?, ?, ?)", (name, key_digest(key), self.clock())
                )
            return
        refuse_unless_bound_to(str(row[0]), name, key)

    def register(
        self,
        name: str,
        host: str,
        port: int,
        version: str,
        capabilities: list[str],
        key: str | None = None,
    ) -> Agent:
        """Add or refresh an agent; a re-registration keeps its first-seen time.

        The first registration with a key binds the name to it; NotYours when the name is
        bound to another key (or `key` is None), and the entry is left as it was."""
        now = self.clock()
        with self._transaction() as db:
            self._check_key(db, name, key, bind=True)
            db.execute(
                "INSERT INTO agents (name, host, port, version, capabilities, first_seen,"
                " last_heartbeat) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET"
                " host=excluded.host, port=excluded.port, version=excluded.version,"
                " capabilities=excluded.capabilities, last_heartbeat=excluded.last_heartbeat",
                (name, host, port, version, json.dumps(capabilities), now, now),
            )
            row = self._one(db, name)
        assert row is not None
        return self._row_to_agent(row, now)

    def heartbeat(self, name: str, key: str | None = None) -> Agent | None:
        """Record a heartbeat; None when the agent is unknown (it should register again).

        NotYours when the name is bound to a key other than `key`."""
        now = self.clock()
        with self._transaction() as db:
            self._check_key(db, name, key)
            db.execute("UPDATE agents SET last_heartbeat = ? WHERE name = ?", (now, name))
            row = self._one(db, name)
        return None if row is None else self._row_to_agent(row, now)

    def deregister(self, name: str, key: str | None = None) -> bool:
        """Remove the entry (the binding stays); NotYours when bound to a key other than `key`."""
        with self._transaction() as db:
            self._check_key(db, name, key)
            return db.execute("DELETE FROM agents WHERE name = ?", (name,)).rowcount > 0

    def forget(self, name: str) -> tuple[bool, bool]:
        """Drop the entry and the binding of `name` (an operator's re-binding):
        (whether an entry was removed, whether a binding was)."""
        with self._transaction() as db:
            entry = db.execute("DELETE FROM agents WHERE name = ?", (name,)).rowcount > 0
            binding = db.execute("DELETE FROM agent_keys WHERE name = ?", (name,)).rowcount > 0
        return entry, binding

    def list(
        self, status: str | None = None, name: str | None = None, version: str | None = None
    ) -> list[Agent]:
        """Agents ordered by name, filtered; rows past retention are never listed."""
        now = self.clock()
        query = f"{_SELECT_AGENTS} WHERE a.last_heartbeat >= ?"
        params: list[Any] = [now - self.stale_after - self.retention]
        if name:
            query += " AND a.name = ?"
            params.append(name)
        if version:
            query += " AND a.version = ?"
            params.append(version)
        with self._lock, _unavailable_on_error():
            rows = self._db.execute(query + " ORDER BY a.name", params).fetchall()
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


@contextmanager
def _unavailable_on_error() -> Iterator[None]:
    """sqlite3.OperationalError (locked past busy_timeout, disk I/O) as StoreUnavailable."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise StoreUnavailable(f"SQLite: {exc}") from exc
