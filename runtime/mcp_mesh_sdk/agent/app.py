"""The agent's HTTP application: probes, metrics, the security summary and /mcp (Starlette).

Every request gets a request id (`X-Request-ID` in, or a new one) that is logged with it and
returned in the response header; the HTTP metrics are taken here too. /mcp and
/security/summary need `Authorization: Bearer <MCP_MESH_TOKEN>`; a source blocked by the
security monitor gets 403 on them. The probes stay open: load balancers call them, often,
so they are answered before the Starlette stack.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_mesh_sdk.agent.metrics import CONTENT_TYPE
from mcp_mesh_sdk.agent.operations import client_address_var
from mcp_mesh_sdk.agent.security import SecurityEventType
from mcp_mesh_sdk.agent.service import Agent
from mcp_mesh_sdk.logs import correlation_id_var, request_id_var

ROUTES = {
    "/health": "health",
    "/health/detailed": "health_detailed",
    "/ready": "ready",
    "/livez": "livez",
    "/metrics": "metrics",
    "/mcp": "mcp",
    "/security/summary": "security_summary",
}
_MAX_REQUEST_ID = 128

Probe = Callable[[], tuple[int, Any]]


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), default=str),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _clean_request_id(value: str | None) -> str | None:
    if value and len(value) <= _MAX_REQUEST_ID and value.isprintable() and " " not in value:
        return value
    return None


class RequestIds:
    """New request ids: a random per-process prefix and a counter (unique, cheap to make)."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count(1)

    def new(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


class AgentASGI:
    """The outer ASGI app: request ids and HTTP metrics for every request, probes answered
    directly, everything else through Starlette with request id, correlation id and client
    address set for its logs."""

    def __init__(self, agent: Agent, inner: ASGIApp, probes: dict[str, Probe]) -> None:
        self.agent = agent
        self.inner = inner
        self.probes = probes
        self.ids = RequestIds()
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._latency: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _clean_request_id(_header(scope, b"x-request-id")) or self.ids.new()
        in_flight = self.agent.metrics.in_flight
        in_flight.inc()
        status = 500
        try:
            probe = self.probes.get(scope["path"])
            if probe is not None and scope["method"] in ("GET", "HEAD"):
                status = await _answer_probe(probe, scope, send, request_id)
            else:
                status = await self._forward(scope, receive, send, request_id)
        finally:
            in_flight.dec()
            self._observe(scope, status, time.perf_counter() - started)

    async def _forward(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> int:
        correlation_id = _clean_request_id(_header(scope, b"x-correlation-id")) or request_id
        tokens = (
            request_id_var.set(request_id),
            correlation_id_var.set(correlation_id),
            client_address_var.set(client_address(scope)),
        )
        encoded_id = request_id.encode("latin-1")
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", encoded_id)]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.inner(scope, receive, send_with_id)
        finally:
            request_id_var.reset(tokens[0])
            correlation_id_var.reset(tokens[1])
            client_address_var.reset(tokens[2])
        return status

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = ROUTES.get(scope["path"], "other")
        key = (route, scope["method"], status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self.agent.metrics.http_requests.labels(
                route=route, method=scope["method"], status=str(status)
            )
            self._counters[key] = counter
        counter.inc()
        latency = self._latency.get(route)
        if latency is None:
            latency = self.agent.metrics.http_latency.labels(route=route)
            self._latency[route] = latency
        latency.observe(seconds)


async def _answer_probe(probe: Probe, scope: Scope, send: Send, request_id: str) -> int:
    status, body = probe()
    payload = json.dumps(body, separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-request-id", request_id.encode("latin-1")),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    body_bytes = b"" if scope["method"] == "HEAD" else payload
    await send({"type": "http.response.body", "body": body_bytes})
    return status


class BearerGate:
    """Blocked sources get 403, callers without the agent token 401 (a security event)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def refusal(self, scope: Scope) -> Response | None:
        source = client_address(scope)
        security = self.agent.security
        if security.is_blocked(source):
            reason = "this source is blocked after repeated security events"
            return _json(403, {"error": "forbidden", "reason": reason})
        header = _header(scope, b"authorization") or ""
        scheme, _, presented = header.partition(" ")
        if scheme.lower() == "bearer" and self.agent.config.token.matches(presented.strip()):
            return None
        reason = "missing bearer token" if not header else "invalid bearer token"
        security.record(
            SecurityEventType.UNAUTHORIZED_ACCESS, source, scope["path"], {"reason": reason}
        )
        return _json(
            401,
            {"error": "unauthorized", "reason": reason},
            headers={"WWW-Authenticate": 'Bearer realm="mcp-mesh-agent"'},
        )


class McpEndpoint:
    """/mcp: the gate, then the SDK's streamable HTTP transport.

    The SDK loads in the background at start-up; a call that arrives before it is loaded
    waits for it (up to REQUEST_TIMEOUT) instead of failing.
    """

    def __init__(self, agent: Agent, gate: BearerGate) -> None:
        self.agent = agent
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self.gate.refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        engine = self.agent.engine or await self.agent.wait_for_engine()
        if engine is None:
            unavailable = _json(
                503,
                {"error": "unavailable", "reason": "the MCP engine is not loaded"},
                headers={"Retry-After": "1"},
            )
            await unavailable(scope, receive, send)
            return
        await engine.asgi(scope, receive, send)


def build_app(agent: Agent) -> AgentASGI:
    gate = BearerGate(agent)

    async def health_detailed(request: Request) -> Response:
        status, body = agent.detailed_health()
        return _json(status, body)

    async def metrics(request: Request) -> Response:
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(agent.metrics_json())
        return Response(agent.metrics_text(), media_type=CONTENT_TYPE)

    async def security_summary(request: Request) -> Response:
        refusal = gate.refusal(request.scope)
        if refusal is not None:
            return refusal
        return _json(200, agent.security.summary())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await agent.startup()
        try:
            yield
        finally:
            await agent.shutdown()

    routes = [
        Route("/health/detailed", health_detailed, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET", "HEAD"]),
        Route("/security/summary", security_summary, methods=["GET"]),
        Route("/mcp", McpEndpoint(agent, gate), methods=["GET", "POST", "DELETE"]),
    ]
    probes: dict[str, Probe] = {
        "/health": agent.health,
        "/ready": agent.readiness,
        "/livez": lambda: (200, {"status": "alive"}),
    }
    return AgentASGI(agent, Starlette(routes=routes, lifespan=lifespan), probes)
