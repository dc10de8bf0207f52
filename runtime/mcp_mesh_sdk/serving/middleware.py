"""Request ids and HTTP request metrics: the ASGI middleware both services run outermost.

Every HTTP request gets a request id (a sane `X-Request-ID` in, or a new one), set in
`logs.request_id_var` for its logs and returned in the `X-Request-ID` response header. It is
then counted by route, method and status in the service's counter, and, where the service
has them, timed in its latency histogram and counted in its in-flight gauge.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_mesh_sdk.logs import request_id_var

MAX_REQUEST_ID = 128


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of the request header `name` (lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def clean_request_id(value: str | None) -> str | None:
    """`value` when it is a usable id (printable, no spaces, at most MAX_REQUEST_ID), else None."""
    if value and len(value) <= MAX_REQUEST_ID and value.isprintable() and " " not in value:
        return value
    return None


class RequestIds:
    """New request ids: a random per-process prefix and a counter (unique, cheap to make)."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count(1)

    def new(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


class RequestMetrics:
    """ASGI middleware: a request id for every HTTP request, then its metrics.

    `route_of(scope)` names the route label (a bounded set: never the raw path).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        route_of: Callable[[Scope], str],
        requests: Counter,
        latency: Histogram | None = None,
        in_flight: Gauge | None = None,
    ) -> None:
        self.app = app
        self.route_of = route_of
        self.requests = requests
        self.latency = latency
        self.in_flight = in_flight
        self.ids = RequestIds()
        self._counters: dict[tuple[str, str, int], Any] = {}  # labelled children, made once
        self._latencies: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = clean_request_id(header(scope, b"x-request-id")) or self.ids.new()
        encoded_id = request_id.encode("latin-1")
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", encoded_id)]
                message = {**message, "headers": headers}
            await send(message)

        token = request_id_var.set(request_id)
        if self.in_flight is not None:
            self.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.in_flight is not None:
                self.in_flight.dec()
            request_id_var.reset(token)
            self._observe(scope, status, time.perf_counter() - started)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route, method = self.route_of(scope), scope["method"]
        counter = self._counters.get((route, method, status))
        if counter is None:
            counter = self.requests.labels(route=route, method=method, status=str(status))
            self._counters[(route, method, status)] = counter
        counter.inc()
        if self.latency is None:
            return
        latency = self._latencies.get(route)
        if latency is None:
            latency = self._latencies[route] = self.latency.labels(route=route)
        latency.observe(seconds)
