"""The registry's PostgreSQL backend: several registry processes share one database.

Every write is correct with other processes writing at once, without read-modify-write:
- a heartbeat is one `UPDATE ... WHERE` (the key check is in its WHERE), and it never moves
  `last_heartbeat` back (GREATEST), so a late heartbeat from another replica loses nothing;
- a registration binds the key with `INSERT ... ON CONFLICT DO NOTHING` and writes the entry
  with `INSERT ... ON CONFLICT DO UPDATE` (first_seen kept), in one transaction that holds a
  per-name advisory lock, so two first registrations of one name cannot both bind it;
- the sweep is one `DELETE ... WHERE last_heartbeat < cutoff`: a heartbeat committed first
  makes the row no longer match (PostgreSQL re-checks the WHERE on the newest version).

Time is the database's clock (unless a clock is injected, as tests do): every replica then
judges staleness and expiry by one clock, however far apart the registry hosts' clocks are.

When the database cannot answer (down, unreachable, not migrated) every call raises
`StoreUnavailable` with one line of reason; the pool reconnects on its own when it is back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from mcp_mesh_sdk.registry import pgschema
from mcp_mesh_sdk.registry.store import (
    Agent,
    Clock,
    StoreUnavailable,
    agent_from_row,
    key_digest,
    refuse_unless_bound_to,
)

WAIT_FOR_CONNECTION = 3.0  # seconds a request waits for a pooled connection before its 503
# Seconds one reconnection keeps trying (its backoff doubles from 1 s) before the pool gives it
# up; the next request starts a new one, so a database back after a long outage is found
# within a few seconds, not after the pool's 300 s default backoff grew to minutes.
RECONNECT_GIVE_UP = 5.0
PING_WAIT = 0.5  # seconds /ready waits for a connection: a probe answers at once
CONNECT_TIMEOUT = 3  # seconds for one connection attempt

_COLUMNS = (
    "a.name, a.host, a.port, a.version, a.capabilities, a.first_seen, a.last_heartbeat,"
    " EXISTS (SELECT 1 FROM agent_keys k WHERE k.name = a.name)"
)
# The queries below are built from these constants only; every value is a parameter.
_MISMATCH = (
    "EXISTS (SELECT 1 FROM agent_keys k WHERE k.name = a.name"
    " AND k.key_sha256 IS DISTINCT FROM %(digest)s::text)"
)


_HEARTBEAT = (
    "UPDATE agents AS a SET last_heartbeat = GREATEST(a.last_heartbeat, %(now)s)"  # noqa: S608
    f" WHERE a.name = %(name)s AND NOT {_MISMATCH} RETURNING {_COLUMNS}"
)


def _name_lock(name: str) -> int:
    """The advisory lock key (signed 64 bits) that serializes registrations of `name`."""
    digest = hashlib.sha256(b"mcp-mesh-agent:" + name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresStore:
    """Agents in PostgreSQL through a psycopg connection pool (autocommit connections)."""

    def __init__(
        self,
        url: str,
        stale_after: float,
        retention: float,
        clock: Clock | None = None,
        pool_size: int = 10,
    ) -> None:
        self.stale_after = stale_after
        self.retention = retention
        self.clock = clock
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
            timeout=WAIT_FOR_CONNECTION,
            check=ConnectionPool.check_connection,  # a connection the restart broke is dropped
            reconnect_timeout=RECONNECT_GIVE_UP,
            open=False,
            name="mcp-mesh-registry",
        )
        self._pool.open(wait=False)  # the registry starts (and says 503) with the database down

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _connection(
        self, timeout: float | None = None
    ) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        try:
            with self._pool.connection(timeout) as conn:
                yield conn
        except psycopg.errors.UndefinedTable as exc:
            raise StoreUnavailable(
                "PostgreSQL: the registry's tables are missing: run "
                "`mcp-mesh-sdk migrate --registry-database`"
            ) from exc
        except psycopg.OperationalError as exc:  # also the pool's PoolTimeout
            raise StoreUnavailable(f"PostgreSQL: {pgschema.first_line(exc)}") from exc

    def schema_version(self, timeout: float) -> int:
        """The applied schema version; StoreUnavailable when no connection within `timeout`.
        (Not the pool's wait(): it closes the pool for good when the database is down.)"""
        with self._connection(timeout) as conn:
            return max(pgschema.applied_versions(conn), default=0)

    def _now(self, conn: psycopg.Connection[tuple[Any, ...]]) -> float:
        """Seconds since the epoch by the database's clock (or the injected one)."""
        if self.clock is not None:
            return self.clock()
        row = conn.execute("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8").fetchone()
        assert row is not None
        return float(row[0])

    def _agent(self, row: tuple[Any, ...], now: float) -> Agent:
        return agent_from_row(row, list(row[4]), now, self.stale_after)

    @staticmethod
    def _refuse_unless_yours(
        conn: psycopg.Connection[tuple[Any, ...]], name: str, key: str | None
    ) -> bool:
        """Raise NotYours when `name` is bound to a key other than `key`; whether bound."""
        row = conn.execute("SELECT key_sha256 FROM agent_keys WHERE name = %s", (name,)).fetchone()
        if row is None:
            return False
        refuse_unless_bound_to(str(row[0]), name, key)
        return True

    def register(
        self,
        name: str,
        host: str,
        port: int,
        version: str,
        capabilities: list[str],
        key: str | None = None,
    ) -> Agent:
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_name_lock(name),))
            now = self._now(conn)
            if key is not None:
                conn.execute(
                    "INSERT INTO agent_keys (name, key_sha256, bound_at) VALUES (%s, %s, %s)"
                    " ON CONFLICT (name) DO NOTHING",
                    (name, key_digest(key), now),
                )
            bound = self._refuse_unless_yours(conn, name, key)
            row = conn.execute(
                "INSERT INTO agents AS a (name, host, port, version, capabilities, first_seen,"
                " last_heartbeat) VALUES (%(name)s, %(host)s, %(port)s, %(version)s,"
                " %(capabilities)s, %(now)s, %(now)s)"
                " ON CONFLICT (name) DO UPDATE SET host = excluded.host, port = excluded.port,"
                " version = excluded.version, capabilities = excluded.capabilities,"
                " last_heartbeat = GREATEST(a.last_heartbeat, excluded.last_heartbeat)"
                " RETURNING a.name, a.host, a.port, a.version, a.capabilities, a.first_seen,"
                " a.last_heartbeat, %(bound)s",
                {
                    "name": name,
                    "host": host,
                    "port": port,
                    "version": version,
                    "capabilities": Jsonb(capabilities),
                    "now": now,
                    "bound": bound,
                },
            ).fetchone()
        assert row is not None
        return self._agent(row, now)

    def heartbeat(self, name: str, key: str | None = None) -> Agent | None:
        digest = None if key is None else key_digest(key)
        with self._connection() as conn:
            now = self._now(conn)
            row = conn.execute(
                _HEARTBEAT,
                {"now": now, "name": name, "digest": digest},
            ).fetchone()
            if row is None:  # unknown, or refused: say which (the write is already decided)
                self._refuse_unless_yours(conn, name, key)
                return None
        return self._agent(row, now)

    def deregister(self, name: str, key: str | None = None) -> bool:
        with self._connection() as conn:
            row = conn.execute(
                f"DELETE FROM agents AS a WHERE a.name = %(name)s AND NOT {_MISMATCH}"  # noqa: S608
                " RETURNING a.name",
                {"name": name, "digest": None if key is None else key_digest(key)},
            ).fetchone()
            if row is None:
                self._refuse_unless_yours(conn, name, key)
                return False
        return True

    def forget(self, name: str) -> tuple[bool, bool]:
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_name_lock(name),))
            entry = conn.execute("DELETE FROM agents WHERE name = %s", (name,)).rowcount > 0
            binding = conn.execute("DELETE FROM agent_keys WHERE name = %s", (name,)).rowcount > 0
        return entry, binding

    def list(
        self, status: str | None = None, name: str | None = None, version: str | None = None
    ) -> list[Agent]:
        query = f"SELECT {_COLUMNS} FROM agents a WHERE a.last_heartbeat >= %s"  # noqa: S608
        params: list[Any] = []
        if name:
            query += " AND a.name = %s"
            params.append(name)
        if version:
            query += " AND a.version = %s"
            params.append(version)
        with self._connection() as conn:
            now = self._now(conn)
            params.insert(0, now - self.stale_after - self.retention)
            rows = conn.execute((query + " ORDER BY a.name").encode(), params).fetchall()
        agents = [self._agent(row, now) for row in rows]
        return [agent for agent in agents if status is None or agent.status == status]

    def sweep(self) -> int:
        with self._connection() as conn:
            cutoff = self._now(conn) - self.stale_after - self.retention
            return conn.execute("DELETE FROM agents WHERE last_heartbeat < %s", (cutoff,)).rowcount

    def ping(self) -> bool:
        try:
            with self._connection(PING_WAIT) as conn:
                conn.execute("SELECT 1 FROM agents LIMIT 1").fetchone()
        except StoreUnavailable:
            return False
        return True
