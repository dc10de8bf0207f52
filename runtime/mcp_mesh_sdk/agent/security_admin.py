"""/security/blocks: the blocks the agent holds in memory, listed and lifted by an operator.

`GET /security/blocks` lists them with the monitor's settings; `DELETE /security/blocks?source=
ADDRESS` lifts one at once (`mcp-mesh-sdk security list|unblock` call these). Both need the
agent token and a caller on this host: a direct loopback peer, or a peer with this socket's
own address, and no X-Forwarded-For (uvicorn replaces the client address only when that header
is there, so without it the address is the direct peer's). A client that holds the token but
is not on the host cannot lift a block; nothing the endpoint answers holds a secret.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from mcp_mesh_sdk.agent.security import MAX_SOURCE_LENGTH, SecurityMonitor
from mcp_mesh_sdk.serving.middleware import header

Gate = Callable[[Scope], Response | None]


def _json(status: int, body: Any) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def from_this_host(scope: Scope) -> bool:
    """Whether the direct peer is this host: loopback, or the address it called us on."""
    if header(scope, b"x-forwarded-for") is not None or header(scope, b"forwarded") is not None:
        return False
    client: tuple[str, int] | None = scope.get("client")
    server: tuple[str, int | None] | None = scope.get("server")
    if not client:
        return False
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    if address.is_loopback or (mapped is not None and mapped.is_loopback):
        return True
    return server is not None and client[0] == server[0]


def valid_source(value: str) -> bool:
    """A source as the monitor names it: printable, no spaces, at most MAX_SOURCE_LENGTH."""
    return 0 < len(value) <= MAX_SOURCE_LENGTH and value.isprintable() and " " not in value


def blocks_endpoint(
    security: SecurityMonitor, gate: Gate
) -> Callable[[Request], Awaitable[Response]]:
    async def security_blocks(request: Request) -> Response:
        refusal = gate(request.scope)
        if refusal is not None:
            return refusal
        if not from_this_host(request.scope):
            why = "blocks are listed and lifted only from the agent's own host"
            return _json(403, {"error": "forbidden", "reason": why})
        if request.method == "GET":
            blocks = [block.describe() for block in security.blocks()]
            return _json(200, {**security.settings(), "blocked": blocks})
        source = request.query_params.get("source", "").strip()
        if not valid_source(source):
            why = f"give the blocked address as ?source= (at most {MAX_SOURCE_LENGTH} characters)"
            return _json(400, {"error": "bad_request", "reason": why})
        lifted = security.unblock(source)
        return _json(
            200,
            {
                "source": source,
                "unblocked": lifted is not None,
                "block": None if lifted is None else lifted.describe(),
            },
        )

    return security_blocks
