-- The registry's tables, as the SQLite backend has them (registry/store.py), for PostgreSQL.
-- Timestamps are seconds since the epoch (double precision), as the API computes with them.
CREATE TABLE agents (
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    port INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    version TEXT NOT NULL,
    capabilities JSONB NOT NULL,
    first_seen DOUBLE PRECISION NOT NULL,
    last_heartbeat DOUBLE PRECISION NOT NULL
);
-- The sweep and the listing select by heartbeat age.
CREATE INDEX agents_last_heartbeat ON agents (last_heartbeat);
-- The SHA-256 of each name's agent key (never the key); outlives the agents row.
CREATE TABLE agent_keys (
    name TEXT PRIMARY KEY,
    key_sha256 TEXT NOT NULL,
    bound_at DOUBLE PRECISION NOT NULL
);
