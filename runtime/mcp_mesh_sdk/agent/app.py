"""The agent's HTTP application: probes, metrics, the security summary and /mcp (Starlette).

Request ids and the HTTP metrics come from the shared middleware (`serving.middleware`). /mcp,
/security/summary and /security/blocks need `Authorization: Bearer <token>`, a client's token
(`agent.clients`) or MCP_MESH_TOKEN; every log line of the request then names the client. A
source the security monitor blocks gets 403 on them (see `BearerGate`).
/security/blocks also answers only callers on this host (`security_admin`). The probes stay
open: load balancers call them, often, so they are answered before the Starlette stack.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_mesh_sdk.agent.admission import BodyAdmission
from mcp_mesh_sdk.agent.clients import ClientTokens
from mcp_mesh_sdk.agent.mcp_engine import request_body_limit
from mcp_mesh_sdk.agent.metrics import CONTENT_TYPE
from mcp_mesh_sdk.agent.operations import client_address_var
from mcp_mesh_sdk.agent.security import SecurityEventType
from mcp_mesh_sdk.agent.security_admin import blocks_endpoint
from mcp_mesh_sdk.agent.service import Agent
from mcp_mesh_sdk.logs import client_var, correlation_id_var, request_id_var
from mcp_mesh_sdk.serving.bearer import INVALID, MISSING, presented_token
from mcp_mesh_sdk.serving.middleware import RequestMetrics, clean_request_id, header

ROUTES = {
    "/health": "health",
    "/health/detailed": "health_detailed",
    "/ready": "ready",
    "/livez": "livez",
    "/metrics": "metrics",
    "/mcp": "mcp",
    "/security/summary": "security_summary",
    "/security/blocks": "security_blocks",
}

Probe = Callable[[], tuple[int, Any]]
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mcp-mesh-agent"'}  # what a 401 answer carries


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), default=str),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def route_name(scope: Scope) -> str:
    """The route label of the HTTP metrics: the endpoint's name, `other` for any other path."""
    return ROUTES.get(scope["path"], "other")


class AgentASGI:
    """Probes answered directly; everything else through Starlette with the correlation id
    (`X-Correlation-ID`, else the request id) and the client address set for its logs."""

    def __init__(self, inner: ASGIApp, probes: dict[str, Probe]) -> None:
        self.inner = inner
        self.probes = probes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        probe = self.probes.get(scope["path"])
        if probe is not None and scope["method"] in ("GET", "HEAD"):
            await _answer_probe(probe, scope, send)
            return
        request_id = request_id_var.get()
        correlation_id = clean_request_id(header(scope, b"x-correlation-id")) or request_id
        tokens = (
            correlation_id_var.set(correlation_id),
            client_address_var.set(client_address(scope)),
            client_var.set(None),  # the bearer gate names the client
        )
        try:
            await self.inner(scope, receive, send)
        finally:
            correlation_id_var.reset(tokens[0])
            client_address_var.reset(tokens[1])
            client_var.reset(tokens[2])


async def _answer_probe(probe: Probe, scope: Scope, send: Send) -> None:
    status, body = probe()
    payload = json.dumps(body, separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    body_bytes = b"" if scope["method"] == "HEAD" else payload
    await send({"type": "http.response.body", "body": body_bytes})


class BearerGate:
    """Callers without a valid token get 401 (a security event of their source, `anonymous`);
    blocked sources get 403: every request of a source blocked for everything, only those
    without a valid token of a source blocked for its unauthenticated requests
    (`agent.security`). An admitted request's client is set for its logs and tool calls."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.tokens = ClientTokens(agent.config.token, agent.config.clients_file)

    def authenticate(self, scope: Scope) -> tuple[str | None, str | None]:
        """(the client's name, None) for a valid token, else (None, MISSING or INVALID)."""
        presented, is_bearer = presented_token(scope)
        if presented is None:
            return None, MISSING
        client = self.tokens.identify(presented)
        if client is None or not is_bearer:
            return None, INVALID
        return client, None

    def refusal(self, scope: Scope) -> Response | None:
        source = client_address(scope)
        security = self.agent.security
        client, reason = self.authenticate(scope)
        if security.is_blocked(source, authenticated=reason is None):
            why = "this source is blocked after repeated security events"
            return _json(403, {"error": "forbidden", "reason": why})
        if client is not None:
            client_var.set(client)
            return None
        security.record(
            SecurityEventType.UNAUTHORIZED_ACCESS, source, scope["path"], {"reason": reason}
        )
        return _json(401, {"error": "unauthorized", "reason": reason}, CHALLENGE)


class McpEndpoint:
    """/mcp: the gate, then the SDK's streamable HTTP transport.

    The SDK loads in the background at start-up; a call that arrives before it is loaded
    waits for it (up to REQUEST_TIMEOUT) instead of failing. A POST's body must then fit in
    MCP_MESH_MAX_BUFFERED_BYTES before it is read (`admission`), else 503 `busy`.
    """

    def __init__(self, agent: Agent, gate: BearerGate) -> None:
        self.agent = agent
        self.gate = gate
        self.admission = BodyAdmission(
            agent.config.max_buffered_bytes, request_body_limit(agent.config)
        )

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
        await self.admission(scope, receive, send, engine.asgi)


def build_app(agent: Agent) -> RequestMetrics:
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

    security_blocks = blocks_endpoint(agent.security, gate.refusal)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await agent.startup()
        try:
            yield
        finally:
            await agent.shutdown()

    routes = [  # /mcp first: the router tries each route in turn, and /mcp is the busy one
        Route("/mcp", McpEndpoint(agent, gate), methods=["GET", "POST", "DELETE"]),
        Route("/health/detailed", health_detailed, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET", "HEAD"]),
        Route("/security/summary", security_summary, methods=["GET"]),
        Route("/security/blocks", security_blocks, methods=["GET", "DELETE"]),
    ]
    probes: dict[str, Probe] = {
        "/health": agent.health,
        "/ready": agent.readiness,
        "/livez": lambda: (200, {"status": "alive"}),
    }
    return RequestMetrics(
        AgentASGI(Starlette(routes=routes, lifespan=lifespan), probes),
        route_of=route_name,
        requests=agent.metrics.http_requests,
        latency=agent.metrics.http_latency,
        in_flight=agent.metrics.in_flight,
    )
