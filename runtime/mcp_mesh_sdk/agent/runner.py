"""Serve the agent on uvicorn, with the shutdown a rolling upgrade behind a load balancer needs.

On the first SIGTERM (or SIGINT): `STOPPING=1`, /ready answers 503 at once, the agent leaves
the registry, and the listener stays open for MCP_MESH_DRAIN_DELAY seconds so the load
balancer sees /ready fail and stops sending; then the listener closes, requests in flight get
MCP_MESH_GRACEFUL_TIMEOUT seconds to finish, and the process exits 0. A second signal skips
the rest of the drain; a third stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
from collections.abc import Generator

import uvicorn

from mcp_mesh_sdk.agent.service import Agent
from mcp_mesh_sdk.config import AgentConfig
from mcp_mesh_sdk.errors import ConfigError, ConfigProblem

logger = logging.getLogger("mcp_mesh_sdk.agent")


def bind_listener(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the app starts; a clear error names the variable."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say they are
    # TCP, and without it every keep-alive response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        why = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ConfigError(
            [ConfigProblem("MCP_MESH_PORT", f"cannot listen on {host}:{port}: {why}")]
        ) from exc
    return sock


class AgentServer(uvicorn.Server):
    """uvicorn's server with the agent's start-up signal and drain-first shutdown."""

    def __init__(self, config: uvicorn.Config, agent: Agent) -> None:
        super().__init__(config)
        self.agent = agent
        self._signals_seen = 0
        self._drain_task: asyncio.Task[None] | None = None
        agent.request_exit = self._exit_now

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            host, port = sockets[0].getsockname()[:2] if sockets else ("?", 0)
            logger.info("listening on %s:%s", host, port)
            self.agent.lifecycle.mark_listening()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        loop = asyncio.get_running_loop()
        handled = (signal.SIGTERM, signal.SIGINT)
        for sig in handled:
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            yield
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        self._signals_seen += 1
        name = signal.Signals(sig).name
        if self._signals_seen == 1:
            logger.info(
                "%s received: draining for %g s, then closing the listener",
                name,
                self.agent.config.drain_delay,
            )
            self.agent.lifecycle.begin_drain()
            self._drain_task = asyncio.create_task(self._drain(), name="drain")
        elif self._signals_seen == 2:
            logger.warning("%s received again: closing the listener now", name)
            self.should_exit = True
        else:
            logger.warning("%s received a third time: stopping at once", name)
            self.force_exit = True

    async def _drain(self) -> None:
        leaving = asyncio.create_task(self.agent.leave_registry())
        await asyncio.sleep(self.agent.config.drain_delay)
        self.should_exit = True
        await leaving

    def _exit_now(self, code: int) -> None:
        self.agent.exit_code = code
        self.should_exit = True


def serve(config: AgentConfig, agent: Agent | None = None) -> int:
    """Run the agent until it is stopped; the exit code for the process."""
    listener = bind_listener(config.host, config.port)
    agent = agent if agent is not None else Agent(config)
    from mcp_mesh_sdk.agent.app import build_app

    uv_config = uvicorn.Config(
        build_app(agent),
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=True,
        forwarded_allow_ips=list(config.trusted_proxies),
        timeout_graceful_shutdown=config.graceful_timeout,  # type: ignore[arg-type]
        timeout_keep_alive=5,
    )
    server = AgentServer(uv_config, agent)
    asyncio.run(server.serve(sockets=[listener]))
    return agent.exit_code
