"""Run the registry application on the server skeleton the agent shares (`serving`).

The registry's standing for systemd never changes: READY=1 once it listens. A stop signal
closes the listener at once (no drain delay: no load balancer probes it).
"""

from __future__ import annotations

import logging

from mcp_mesh_sdk.errors import ConfigError, ConfigProblem, OpsError
from mcp_mesh_sdk.logs import setup_logging
from mcp_mesh_sdk.registry.app import create_app
from mcp_mesh_sdk.registry.config import RegistryConfig
from mcp_mesh_sdk.registry.store import AgentStore, RegistryStore, StoreUnavailable
from mcp_mesh_sdk.serving.listener import ListenError, bind_listener
from mcp_mesh_sdk.serving.server import Hooks, ServiceServer
from mcp_mesh_sdk.serving.systemd import Standing, SystemdReporter
from mcp_mesh_sdk.serving.tls import TlsError

log = logging.getLogger("mcp_mesh_sdk.registry")

GRACEFUL_TIMEOUT = 5.0  # seconds requests in flight get once the listener closes
SCHEMA_CHECK_WAIT = 5.0  # seconds to reach PostgreSQL at start before serving 503s instead


def open_store(config: RegistryConfig) -> RegistryStore:
    """PostgreSQL when a database URL is set, else the SQLite file; OpsError when unusable.

    PostgreSQL down at start is no error (the registry says 503 until it is back); reached
    with an older schema than this release needs, it is: run `migrate --registry-database`."""
    if config.database_url is None:
        try:
            return AgentStore(config.db_path, config.stale_after, config.retention)
        except Exception as exc:  # sqlite3.Error or OSError: the database is unusable either way
            raise OpsError(f"cannot open the registry database {config.db_path}: {exc}") from exc
    from mcp_mesh_sdk.registry import pgschema
    from mcp_mesh_sdk.registry.pgstore import PostgresStore

    store = PostgresStore(
        config.database_url.reveal(),
        config.stale_after,
        config.retention,
        pool_size=config.database_pool_size,
    )
    try:
        version = store.schema_version(SCHEMA_CHECK_WAIT)
    except StoreUnavailable as exc:
        log.warning(
            "registry database unavailable at start; answering 503 until it is back",
            extra={"fields": {"reason": str(exc)}},
        )
        return store
    needed = pgschema.latest_version()
    if version < needed:
        store.close()
        raise OpsError(
            f"the registry database has schema version {version}, this release needs {needed}: "
            "run `mcp-mesh-sdk migrate --registry-database` first"
        )
    log.info("registry database: PostgreSQL", extra={"fields": {"schema_version": version}})
    return store


def serve(config: RegistryConfig) -> int:
    """Serve until SIGTERM; 0 after a clean stop."""
    setup_logging(config.log_level, config.log_format)
    for warning in config.warnings:
        log.warning(warning)
    store = open_store(config)
    try:
        listener = bind_listener(config.host, config.port)
    except ListenError as exc:
        store.close()
        raise OpsError(str(exc)) from exc
    standing = Standing(may_serve=True, status=f"serving on {config.host}:{config.port}")
    try:
        server = ServiceServer(
            create_app(config, store),
            Hooks(systemd=SystemdReporter(lambda: standing)),
            graceful_timeout=GRACEFUL_TIMEOUT,
            limits=config.connection_limits,
            tls=config.tls,
        )
    except TlsError as exc:
        listener.close()
        store.close()
        raise ConfigError([ConfigProblem("MCP_MESH_REGISTRY_TLS_CERT_FILE", str(exc))]) from exc
    try:
        server.serve_on(listener)
    finally:
        store.close()
    log.info("registry stopped")
    return 0 if server.started else 1
