"""The agent's HTTP application (Starlette): probes, metrics, the security summary and /mcp.

Every request gets a request id (`X-Request-ID` in, or a new one) that is logged with it and
returned in the response header; the HTTP metrics are taken here too. /mcp and
/security/summary need `Authorization: Bearer <MCP_MESH_TOKEN>`; a source blocked by the
security monitor gets 403 on them. The probes stay open: load balancers call them.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
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


class RequestContextMiddleware:
    """Request id, correlation id, client address, in-flight count and HTTP metrics."""

    def __init__(self, app: ASGIApp, agent: Agent) -> None:
        self.app = app
        self.agent = agent
        self._children: dict[tuple[str, str, int], Any] = {}
        self._latency: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _clean_request_id(_header(scope, b"x-request-id")) or uuid.uuid4().hex
        correlation_id = _clean_request_id(_header(scope, b"x-correlation-id")) or request_id
        tokens = (
            request_id_var.set(request_id),
            correlation_id_var.set(correlation_id),
            client_address_var.set(client_address(scope)),
        )
        encoded_id = request_id.encode("latin-1")
        status = 500
        in_flight = self.agent.metrics.in_flight

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", encoded_id)]
                message = {**message, "headers": headers}
            await send(message)

        started = time.perf_counter()
        in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            in_flight.dec()
            self._observe(scope, status, time.perf_counter() - started)
            request_id_var.reset(tokens[0])
            correlation_id_var.reset(tokens[1])
            client_address_var.reset(tokens[2])

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = ROUTES.get(scope["path"], "other")
        key = (route, scope["method"], status)
        counter = self._children.get(key)
        if counter is None:
            counter = self.agent.metrics.http_requests.labels(
                route=route, method=scope["method"], status=str(status)
            )
            self._children[key] = counter
        counter.inc()
        latency = self._latency.get(route)
        if latency is None:
            latency = self.agent.metrics.http_latency.labels(route=route)
            self._latency[route] = latency
        latency.observe(seconds)


class BearerGate:
    """Blocked sources get 403, callers without the agent token 401 (a security event)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def refusal(self, scope: Scope) -> Response | None:
        source = client_address(scope)
        security = self.agent.security
        if security.is_blocked(source):
            return _json(
                403,
                {
                    "error": "forbidden",
                    "reason": "this source is blocked after repeated security events",
                },
            )
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
    """/mcp: the gate, then the SDK's streamable HTTP transport (503 until it is loaded)."""

    def __init__(self, agent: Agent, gate: BearerGate) -> None:
        self.agent = agent
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self.gate.refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        engine = self.agent.engine
        if engine is None:
            starting = _json(
                503,
                {"error": "starting", "reason": "the MCP engine is loading"},
                headers={"Retry-After": "1"},
            )
            await starting(scope, receive, send)
            return
        await engine.asgi(scope, receive, send)


def build_app(agent: Agent) -> Starlette:
    gate = BearerGate(agent)

    async def health(request: Request) -> Response:
        status, body = agent.health()
        return _json(status, body)

    async def health_detailed(request: Request) -> Response:
        status, body = agent.detailed_health()
        return _json(status, body)

    async def ready(request: Request) -> Response:
        status, body = agent.readiness()
        return _json(status, body)

    async def livez(request: Request) -> Response:
        return _json(200, {"status": "alive"})

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
        Route("/health", health, methods=["GET", "HEAD"]),
        Route("/health/detailed", health_detailed, methods=["GET", "HEAD"]),
        Route("/ready", ready, methods=["GET", "HEAD"]),
        Route("/livez", livez, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET", "HEAD"]),
        Route("/security/summary", security_summary, methods=["GET"]),
        Route("/mcp", McpEndpoint(agent, gate), methods=["GET", "POST", "DELETE"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(RequestContextMiddleware, agent=agent)],
        lifespan=lifespan,
    )
