"""Bounded connections: a limit on open connections and a deadline for request headers.

uvicorn's own options do not suffice against slow clients. `limit_concurrency` answers 503
only once a request's headers have arrived, so a connection that never finishes its headers
holds its file descriptor until it goes away; `timeout_keep_alive` covers only the idle time
between two requests. This guard, a subclass of uvicorn's h11 protocol, adds what is missing:

- a connection waiting for its request headers longer than `header_timeout` gets a 408 and is
  closed (from its first byte on a kept-alive connection, from its opening on a new one);
- past `max_connections`, each new connection closes the oldest one still waiting for its
  headers (else the oldest idle one) with a 503: a flood of slow connections cannot keep a
  fresh one (a load balancer's /ready probe, an MCP call) from being served. Only when every
  other connection is busy with a request is the new one itself refused.

What it closes is logged at a bounded rate (`ratelimit`), never once per connection.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from typing import ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger("mcp_mesh_sdk.serving.connections")


class Stage(enum.Enum):
    WAITING = "waiting for request headers"
    SERVING = "serving a request"
    IDLE = "idle between requests"


def canned_response(status: int, phrase: str, error: str, reason: str) -> bytes:
    """A complete HTTP/1.1 answer with a JSON body and `Connection: close`."""
    body = json.dumps({"error": error, "reason": reason}, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n"
        f"retry-after: 1\r\nconnection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class ConnectionGuard:
    """The open connections of one server, oldest first in each stage."""

    def __init__(self, max_connections: int, header_timeout: float) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self._stages: dict[Stage, dict[GuardedH11Protocol, None]] = {s: {} for s in Stage}
        self._stage_of: dict[GuardedH11Protocol, Stage] = {}
        self.closed_over_limit = 0
        self.closed_slow_headers = 0
        self._over_limit = canned_response(
            503, "Service Unavailable", "busy",
            f"more than {max_connections} connections are open; retry shortly",
        )  # fmt: skip
        self._slow_headers = canned_response(
            408, "Request Timeout", "timeout",
            f"the request headers did not arrive within {header_timeout:g} s",
        )  # fmt: skip

    @property
    def open_connections(self) -> int:
        return len(self._stage_of)

    def count(self, stage: Stage) -> int:
        return len(self._stages[stage])

    def opened(self, connection: GuardedH11Protocol) -> None:
        """A new connection waits for its headers; past the limit the oldest waiting (else
        idle) connection is closed to make room."""
        self.move(connection, Stage.WAITING)
        while len(self._stage_of) > self.max_connections:
            victim = self._oldest(Stage.WAITING) or self._oldest(Stage.IDLE) or connection
            self.closed_over_limit += 1
            logger.warning(
                "connections over the limit of %d: closing the oldest one %s",
                self.max_connections,
                self._stage_of[victim].value,
            )
            self.drop(victim, self._over_limit)

    def move(self, connection: GuardedH11Protocol, stage: Stage) -> None:
        current = self._stage_of.get(connection)
        if current is stage:
            return
        stages = self._stages
        if current is not None:
            del stages[current][connection]
        stages[stage][connection] = None
        self._stage_of[connection] = stage
        if connection._header_timer is not None:
            connection.cancel_header_timer()
        if stage is Stage.WAITING:
            connection.start_header_timer(self.header_timeout)

    def forget(self, connection: GuardedH11Protocol) -> None:
        stage = self._stage_of.pop(connection, None)
        if stage is not None:
            del self._stages[stage][connection]
        connection.cancel_header_timer()

    def headers_too_slow(self, connection: GuardedH11Protocol) -> None:
        if self._stage_of.get(connection) is not Stage.WAITING:
            return
        self.closed_slow_headers += 1
        logger.warning(
            "closing a connection whose request headers took over %g s", self.header_timeout
        )
        self.drop(connection, self._slow_headers)

    def drop(self, connection: GuardedH11Protocol, answer: bytes) -> None:
        self.forget(connection)
        connection.close_with(answer)

    def _oldest(self, stage: Stage) -> GuardedH11Protocol | None:
        return next(iter(self._stages[stage]), None)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol that reports each connection's stage to its `guard`.

    Make one subclass per server with `bound_to(guard)` (uvicorn instantiates the class).
    """

    guard: ClassVar[ConnectionGuard]
    _header_timer: asyncio.TimerHandle | None = None

    @classmethod
    def bound_to(cls, guard: ConnectionGuard) -> type[GuardedH11Protocol]:
        return type("GuardedH11Protocol", (cls,), {"guard": guard})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.guard.opened(self)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow(after_response=False)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow(after_response=True)

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.forget(self)
        super().connection_lost(exc)

    def _follow(self, *, after_response: bool) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and not after_response:
            self.guard.move(self, Stage.SERVING)  # the usual case first: a request came in
        elif self.transport.is_closing():
            self.guard.forget(self)
        elif cycle is not None and not cycle.response_complete:
            self.guard.move(self, Stage.SERVING)  # the next pipelined request
        elif after_response:
            self.guard.move(self, Stage.IDLE)  # uvicorn's keep-alive timeout runs from now
        else:
            self.guard.move(self, Stage.WAITING)  # the first bytes of the next request

    def start_header_timer(self, seconds: float) -> None:
        self._header_timer = self.loop.call_later(seconds, self.guard.headers_too_slow, self)

    def cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def close_with(self, answer: bytes) -> None:
        """Answer `answer` (a complete response) and close; a request in flight is cut off."""
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(answer)
        self.transport.close()
