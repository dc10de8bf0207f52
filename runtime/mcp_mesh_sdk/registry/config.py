"""The registry's environment, validated with the agent's rules: every bad variable at once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.config import LOG_FORMATS, LOG_LEVELS, EnvReader, Secret

DEFAULT_DB = Path("/var/lib/mcp-mesh/registry.db")
REGISTRY_PREFIX = "MCP_MESH_REGISTRY_"


@dataclass(frozen=True)
class RegistryConfig:
    token: Secret
    host: str = "0.0.0.0"
    port: int = 8000
    db_path: Path = DEFAULT_DB
    health_interval: float = 30.0
    stale_intervals: int = 3
    retention: float = 3600.0
    log_level: str = "INFO"
    log_format: str = "json"
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def stale_after(self) -> float:
        """Seconds without a heartbeat after which an agent is listed as stale."""
        return self.health_interval * self.stale_intervals

    @property
    def sweep_interval(self) -> float:
        """How often rows past their retention are deleted."""
        return max(1.0, min(self.health_interval, 60.0))

    def redacted(self) -> dict[str, Any]:
        """Settings for display: the token is never shown."""
        return {
            "MCP_MESH_REGISTRY_HOST": self.host,
            "MCP_MESH_REGISTRY_PORT": self.port,
            "MCP_MESH_REGISTRY_DB": str(self.db_path),
            "MCP_MESH_REGISTRY_TOKEN": "********",
            "HEALTH_INTERVAL": self.health_interval,
            "MCP_MESH_REGISTRY_STALE_INTERVALS": self.stale_intervals,
            "MCP_MESH_REGISTRY_RETENTION": self.retention,
            "LOG_LEVEL": self.log_level,
            "MCP_MESH_LOG_FORMAT": self.log_format,
        }


def load_registry_config(env: Mapping[str, str]) -> RegistryConfig:
    """The registry's configuration from `env`; ConfigError names every bad variable."""
    read = EnvReader(env)
    token, _ = read.header_token(
        "MCP_MESH_REGISTRY_TOKEN", "MCP_MESH_REGISTRY_TOKEN_FILE", required=True
    )
    config = RegistryConfig(
        token=token or Secret(""),
        host=read.host("MCP_MESH_REGISTRY_HOST", "0.0.0.0"),
        port=read.integer("MCP_MESH_REGISTRY_PORT", 8000, minimum=1, maximum=65535),
        db_path=read.absolute_path("MCP_MESH_REGISTRY_DB", DEFAULT_DB) or DEFAULT_DB,
        health_interval=read.number(
            "HEALTH_INTERVAL", 30.0, minimum=0.0, allow_minimum=False, unit="seconds"
        ),
        stale_intervals=read.integer("MCP_MESH_REGISTRY_STALE_INTERVALS", 3, minimum=1),
        retention=read.number("MCP_MESH_REGISTRY_RETENTION", 3600.0, unit="seconds"),
        log_level=read.choice("LOG_LEVEL", "INFO", LOG_LEVELS, upper=True),
        log_format=read.choice("MCP_MESH_LOG_FORMAT", "json", LOG_FORMATS),
    )
    read.unknown_variables((REGISTRY_PREFIX,))
    read.finish()
    return RegistryConfig(**{**config.__dict__, "warnings": tuple(read.warnings)})
