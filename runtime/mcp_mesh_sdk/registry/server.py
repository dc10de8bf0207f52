"""Run the registry application under uvicorn on a socket bound before start-up."""

from __future__ import annotations

import asyncio
import logging
import socket
from types import FrameType

import uvicorn

from mcp_mesh_sdk.errors import OpsError
from mcp_mesh_sdk.logs import setup_logging
from mcp_mesh_sdk.registry.app import create_app
from mcp_mesh_sdk.registry.config import RegistryConfig
from mcp_mesh_sdk.registry.store import AgentStore

log = logging.getLogger("mcp_mesh_sdk.registry")


class GracefulServer(uvicorn.Server):
    """Stopping on SIGTERM/SIGINT is a clean exit (status 0), not a death by the signal."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()  # uvicorn would re-raise them after shutdown


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, so "address in use" is a clear error before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OpsError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(1024)
    return sock


def serve(config: RegistryConfig) -> int:
    """Serve until SIGTERM; 0 after a clean stop."""
    setup_logging(config.log_level, config.log_format)
    for warning in config.warnings:
        log.warning(warning)
    try:
        store = AgentStore(config.db_path, config.stale_after, config.retention)
    except Exception as exc:  # sqlite3.Error or OSError: the database is unusable either way
        raise OpsError(f"cannot open the registry database {config.db_path}: {exc}") from exc
    sock = bind(config.host, config.port)
    server = GracefulServer(
        uvicorn.Config(
            create_app(config, store),
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
    )
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        sock.close()
        store.close()
    log.info("registry stopped")
    return 0 if server.started else 1
