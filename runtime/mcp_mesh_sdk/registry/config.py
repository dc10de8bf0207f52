"""The registry's environment, validated with the agent's rules: every bad variable at once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.constants import REGISTRY_DB, REGISTRY_PORT
from mcp_mesh_sdk.envreader import LOG_FORMATS, LOG_LEVELS, EnvReader, Secret
from mcp_mesh_sdk.serving.limits import ConnectionLimits, read_connection_limits
from mcp_mesh_sdk.serving.tls import TlsSettings, read_tls_settings

REGISTRY_PREFIX = "MCP_MESH_REGISTRY_"
DATABASE_URL_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True)
class RegistryConfig:
    """The registry's settings; each default is what its variable unset means."""

    token: Secret  # MCP_MESH_REGISTRY_TOKEN or the file MCP_MESH_REGISTRY_TOKEN_FILE names
    host: str = "0.0.0.0"
    port: int = REGISTRY_PORT
    db_path: Path = REGISTRY_DB
    # PostgreSQL instead of the SQLite file when set (MCP_MESH_REGISTRY_DATABASE_URL, its
    # _FILE, or the seed's DATABASE_URL); a Secret: it carries the role's password
    database_url: Secret | None = None
    database_pool_size: int = 10  # MCP_MESH_REGISTRY_DATABASE_POOL_SIZE, connections at most
    health_interval: float = 30.0  # seconds between heartbeats, as the agents are set up
    stale_intervals: int = 3  # missed heartbeats before an agent is listed as stale
    retention: float = 3600.0  # seconds a stale agent stays listed before it is deleted
    log_level: str = "INFO"
    log_format: str = "json"
    connection_limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    tls: TlsSettings = field(default_factory=TlsSettings)  # MCP_MESH_REGISTRY_TLS_*_FILE
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
            "MCP_MESH_REGISTRY_DATABASE_URL": "********" if self.database_url else "",
            "MCP_MESH_REGISTRY_DATABASE_POOL_SIZE": self.database_pool_size,
            "MCP_MESH_REGISTRY_TOKEN": "********",
            "HEALTH_INTERVAL": self.health_interval,
            "MCP_MESH_REGISTRY_STALE_INTERVALS": self.stale_intervals,
            "MCP_MESH_REGISTRY_RETENTION": self.retention,
            "LOG_LEVEL": self.log_level,
            "MCP_MESH_LOG_FORMAT": self.log_format,
            **self.connection_limits.as_env(REGISTRY_PREFIX),
            **self.tls.as_env(REGISTRY_PREFIX),
        }


def registry_db_path(env: Mapping[str, str]) -> Path:
    """Where the registry's database is, from `env` alone (no token needed: ops commands)."""
    read = EnvReader(env)
    path = read.absolute_path("MCP_MESH_REGISTRY_DB", REGISTRY_DB) or REGISTRY_DB
    read.finish()
    return path


def read_database_url(read: EnvReader) -> Secret | None:
    """The PostgreSQL URL, if any: MCP_MESH_REGISTRY_DATABASE_URL (or its _FILE), else the
    seed's DATABASE_URL. Never echoed, not even in a problem."""
    url = read.secret("MCP_MESH_REGISTRY_DATABASE_URL", "MCP_MESH_REGISTRY_DATABASE_URL_FILE")
    name = "MCP_MESH_REGISTRY_DATABASE_URL"
    if url is None and read.raw("MCP_MESH_REGISTRY_DATABASE_URL_FILE") is None:
        url, name = read.secret("DATABASE_URL"), "DATABASE_URL"
    if url is not None and not url.reveal().startswith(DATABASE_URL_SCHEMES):
        read.problem(name, "must be a PostgreSQL URL, postgresql://USER:PASSWORD@HOST:PORT/DB")
        return None
    return url


def registry_database_url(env: Mapping[str, str]) -> Secret | None:
    """The registry's PostgreSQL URL from `env` alone (ops commands: migrate, forget)."""
    read = EnvReader(env)
    url = read_database_url(read)
    read.finish()
    return url


def load_registry_config(env: Mapping[str, str]) -> RegistryConfig:
    """The registry's configuration from `env`; ConfigError names every bad variable."""
    read = EnvReader(env)
    default = RegistryConfig(token=Secret(""))
    token = read.header_token(
        "MCP_MESH_REGISTRY_TOKEN", "MCP_MESH_REGISTRY_TOKEN_FILE", required=True
    )
    config = RegistryConfig(
        token=token or default.token,
        host=read.host("MCP_MESH_REGISTRY_HOST", default.host),
        port=read.integer("MCP_MESH_REGISTRY_PORT", default.port, minimum=1, maximum=65535),
        db_path=read.absolute_path("MCP_MESH_REGISTRY_DB", default.db_path) or default.db_path,
        database_url=read_database_url(read),
        database_pool_size=read.integer(
            "MCP_MESH_REGISTRY_DATABASE_POOL_SIZE", default.database_pool_size, minimum=2
        ),
        health_interval=read.number(
            "HEALTH_INTERVAL",
            default.health_interval,
            minimum=0.0,
            allow_minimum=False,
            unit="seconds",
        ),
        stale_intervals=read.integer(
            "MCP_MESH_REGISTRY_STALE_INTERVALS", default.stale_intervals, minimum=1
        ),
        retention=read.number("MCP_MESH_REGISTRY_RETENTION", default.retention, unit="seconds"),
        log_level=read.choice("LOG_LEVEL", default.log_level, LOG_LEVELS, upper=True),
        log_format=read.choice("MCP_MESH_LOG_FORMAT", default.log_format, LOG_FORMATS),
        connection_limits=read_connection_limits(read, REGISTRY_PREFIX),
        tls=read_tls_settings(read, REGISTRY_PREFIX),
    )
    read.unknown_variables((REGISTRY_PREFIX,))
    read.finish()
    return replace(config, warnings=tuple(read.warnings))
