"""The connection bounds a service serves within, and how its env file sets them.

The agent reads them as `MCP_MESH_*`, the registry as `MCP_MESH_REGISTRY_*`: the same three
variables with the same rules, read here once. (No uvicorn here: ops commands load configs.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp_mesh_sdk.envreader import EnvReader


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 1000  # open HTTP connections at once
    header_timeout: float = 10.0  # seconds a request's headers may take to arrive
    keep_alive_timeout: int = 5  # seconds an idle kept-alive connection stays open

    def as_env(self, prefix: str) -> dict[str, Any]:
        """The limits under their variable names (`prefix` + MAX_CONNECTIONS, ...)."""
        return {
            f"{prefix}MAX_CONNECTIONS": self.max_connections,
            f"{prefix}HEADER_TIMEOUT": self.header_timeout,
            f"{prefix}KEEP_ALIVE_TIMEOUT": self.keep_alive_timeout,
        }


def read_connection_limits(read: EnvReader, prefix: str) -> ConnectionLimits:
    """`prefix`MAX_CONNECTIONS, `prefix`HEADER_TIMEOUT and `prefix`KEEP_ALIVE_TIMEOUT;
    a bad value is a problem in `read`, and its default stands in."""
    default = ConnectionLimits()
    return ConnectionLimits(
        max_connections=read.integer(
            f"{prefix}MAX_CONNECTIONS", default.max_connections, minimum=1, maximum=1_000_000
        ),
        header_timeout=read.number(
            f"{prefix}HEADER_TIMEOUT",
            default.header_timeout,
            minimum=0.0,
            maximum=600.0,
            unit="seconds",
            allow_minimum=False,
        ),
        keep_alive_timeout=read.integer(
            f"{prefix}KEEP_ALIVE_TIMEOUT",
            default.keep_alive_timeout,
            minimum=1,
            maximum=3600,
            unit="seconds",
        ),
    )
