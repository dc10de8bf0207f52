"""uvicorn's server with the shutdown a rolling upgrade behind a load balancer needs.

On the first SIGTERM (or SIGINT) the drain begins: `STOPPING=1`, the service's `on_drain`
(the agent's /ready answers 503 from then on), and its `while_draining` work (the agent leaves
the registry), while the listener stays open for `drain_delay` seconds so the load balancer
sees /ready fail and stops sending. Then the listener closes, requests in flight get the
graceful timeout to finish, and `serve_on` returns: a clean stop, not a death by the signal.
A second signal skips the rest of the drain; a third stops at once.

Like uvicorn's own subclasses, this overrides public hooks only (`startup`, `shutdown`,
`capture_signals`) and stops the server through `should_exit` and `force_exit`.

It serves within `ConnectionLimits` (`limits`, enforced by `connections`): a connection limit
and header and idle timeouts, with the open-file limit raised to fit them (`openfiles`), and
flood-prone log lines rate-limited (`ratelimit`).

With `tls` settings the listener speaks TLS only, with a context of its own (`tls`): TLS 1.2 or
later, the certificate reloaded when its file changes. The asyncio server is then made here,
as uvicorn makes it, plus handshake and shutdown timeouts: a client that never finishes its TLS
handshake (or its close) is cut off after the header timeout, as one that never finishes its
headers. Connections count against the connection limit once their handshake is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from mcp_mesh_sdk.serving.connections import ConnectionGuard, GuardedH11Protocol
from mcp_mesh_sdk.serving.limits import ConnectionLimits
from mcp_mesh_sdk.serving.listener import BACKLOG
from mcp_mesh_sdk.serving.openfiles import fit_connection_limit
from mcp_mesh_sdk.serving.ratelimit import limit_flood_logs
from mcp_mesh_sdk.serving.systemd import SystemdReporter, systemd_watchdog
from mcp_mesh_sdk.serving.tls import CertificateReloader, TlsSettings

logger = logging.getLogger("mcp_mesh_sdk.serving")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _nothing() -> None:
    return None


@dataclass
class Hooks:
    """What differs between the services the skeleton serves."""

    systemd: SystemdReporter  # READY=1 and STATUS= follow the service's own standing
    drain_delay: float = 0.0  # seconds the listener stays open after the first stop signal
    drain_status: str = "stopping"  # the STATUS= line sent with STOPPING=1
    on_listening: Callable[[], None] = _nothing
    on_drain: Callable[[], None] = _nothing
    while_draining: Callable[[], Awaitable[None]] | None = None


class ServiceServer(uvicorn.Server):
    """A uvicorn server for one service; `serve_on(listener)` runs it until it is stopped."""

    def __init__(
        self,
        app: ASGIApp,
        hooks: Hooks,
        *,
        graceful_timeout: float,
        trusted_proxies: Sequence[str] | None = None,
        limits: ConnectionLimits | None = None,
        tls: TlsSettings | None = None,
    ) -> None:
        """TlsError when `tls` is enabled and its files cannot serve."""
        limits = limits or ConnectionLimits()
        self.limits = limits
        self.certificates = CertificateReloader(tls) if tls is not None and tls.enabled else None
        limit_flood_logs()
        self.connections = ConnectionGuard(
            fit_connection_limit(limits.max_connections, BACKLOG), limits.header_timeout
        )
        super().__init__(
            uvicorn.Config(
                app,
                lifespan="on",
                log_config=None,
                access_log=False,
                server_header=False,
                proxy_headers=True,
                # None: uvicorn's default ($FORWARDED_ALLOW_IPS, else 127.0.0.1)
                forwarded_allow_ips=None if trusted_proxies is None else list(trusted_proxies),
                timeout_graceful_shutdown=graceful_timeout,  # type: ignore[arg-type]
                timeout_keep_alive=limits.keep_alive_timeout,
                # Not limit_concurrency: it answers only once the headers are in (see connections).
                http=GuardedH11Protocol.bound_to(self.connections),
                backlog=BACKLOG,  # asyncio accepts up to this many at once (see openfiles)
            )
        )
        self.hooks = hooks
        self.draining = False
        self._signals_seen = 0
        self._tasks: list[asyncio.Task[None]] = []

    def serve_on(self, listener: socket.socket) -> None:
        """Serve on `listener` (bound beforehand) until stopped; the listener is closed after."""
        try:
            asyncio.run(self.serve(sockets=[listener]))
        finally:
            listener.close()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        watchdog = systemd_watchdog()
        if watchdog is not None:  # from the start: the application's start-up counts too
            self._background(watchdog.run(), "systemd-watchdog")
        if self.certificates is None:
            await super().startup(sockets=sockets)
        else:  # uvicorn runs the lifespan and listens on nothing; the TLS listeners follow
            await super().startup(sockets=[])
            if self.started:
                await self._listen_tls(sockets or [], self.certificates)
        if self.started:
            host, port = sockets[0].getsockname()[:2] if sockets else ("?", 0)
            logger.info("listening on %s:%s", host, port)
            self.hooks.on_listening()
            self._background(self.hooks.systemd.run(), "systemd-notify")

    async def _listen_tls(
        self, sockets: list[socket.socket], certificates: CertificateReloader
    ) -> None:
        """Serve `sockets` with TLS: uvicorn's protocol, as its own startup makes it."""
        config = self.config
        loop = asyncio.get_running_loop()

        def protocol() -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )

        for sock in sockets:
            server = await loop.create_server(
                protocol,
                sock=sock,
                ssl=certificates.context,
                backlog=config.backlog,
                ssl_handshake_timeout=self.limits.header_timeout,
                ssl_shutdown_timeout=self.limits.header_timeout,  # a peer silent at the close
            )
            self.servers.append(server)
        self._background(certificates.watch(), "tls-reload")

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.begin_drain()  # also when the service asked to exit: no signal came
        try:
            await super().shutdown(sockets=sockets)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks.clear()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Stop signals start the drain. uvicorn's own handler would raise them again after
        shutdown, so a clean stop would end as a death by the signal instead of status 0."""
        if threading.current_thread() is not threading.main_thread():
            yield  # only the main thread receives signals (as in uvicorn)
            return
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self.handle_stop_signal, sig)
        try:
            yield
        finally:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)

    def handle_stop_signal(self, sig: int) -> None:
        """First signal: drain; second: close the listener now; third: stop at once."""
        self._signals_seen += 1
        name = signal.Signals(sig).name
        if self._signals_seen == 1:
            logger.info(
                "%s received: draining for %g s, then closing the listener",
                name,
                self.hooks.drain_delay,
            )
            self.begin_drain()
            self._background(self._drain(), "drain")
        elif self._signals_seen == 2:
            logger.warning("%s received again: closing the listener now", name)
            self.should_exit = True
        else:
            logger.warning("%s received a third time: stopping at once", name)
            self.force_exit = True

    def begin_drain(self) -> None:
        """The service begins to stop: its `on_drain`, then STOPPING=1 (once)."""
        if self.draining:
            return
        self.draining = True
        self.hooks.on_drain()
        self.hooks.systemd.stopping(self.hooks.drain_status)

    async def _drain(self) -> None:
        work = None
        if self.hooks.while_draining is not None:
            work = asyncio.create_task(_awaited(self.hooks.while_draining()), name="drain-work")
        await asyncio.sleep(self.hooks.drain_delay)
        self.should_exit = True
        if work is not None:
            await work

    def _background(self, work: Awaitable[None], name: str) -> None:
        self._tasks.append(asyncio.create_task(_awaited(work), name=name))


async def _awaited(work: Awaitable[None]) -> None:
    await work
