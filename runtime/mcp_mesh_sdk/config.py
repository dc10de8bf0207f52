"""The agent's settings: what each variable of agent.env means, its default and its rules.

`AgentConfig` is the schema, each default stated once on its field; `check_agent_env(env)` reads
every variable with `EnvReader` and reports every bad one together with the warnings (unknown
variables carrying the agent's prefixes `MCP_MESH_` and `MESH_`, risky-but-valid settings, and
variables a previous release used). `load_agent_config(env)` raises one `ConfigError` instead.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mcp_mesh_sdk.agent.clients import (
    NO_CLIENTS_WARNING,
    ClientsFileError,
    digest,
    read_clients_file,
)
from mcp_mesh_sdk.constants import AGENT_PORT, BACKUP_DIR, REGISTRY_PORT, STATE_DIR
from mcp_mesh_sdk.envreader import LOG_FORMATS, LOG_LEVELS, EnvReader, Secret
from mcp_mesh_sdk.errors import ConfigError, ConfigProblem
from mcp_mesh_sdk.serving.limits import ConnectionLimits, read_connection_limits
from mcp_mesh_sdk.serving.tls import TlsSettings, read_tls_settings

AGENT_PREFIXES = ("MCP_MESH_", "MESH_")
MAX_FILE_SIZE_LIMIT = 1024**3
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
# Variables an env file of an earlier release may still hold: accepted and ignored, with a
# warning that names them (never their value) so the next configuration run drops them.
RETIRED_VARIABLES = {
    "CACHE_TTL": "the agent keeps no cache",
    "SECRET_KEY": "the agent signs nothing",
}

# What BASE_DIRECTORY may not be: clients read and overwrite everything under it (and backups
# archive it). `/` is the whole system; the others hold its configuration and secrets (/etc,
# /root), programs and libraries (/usr, /bin, /sbin, /lib*, /boot), kernel and device
# interfaces (/proc, /sys, /dev, /run), every service's data (/var) or the users' files
# (/home). A folder of its own inside one (the default /var/lib/mcp-mesh/data) is fine.
SYSTEM_DIRECTORIES = frozenset(
    ["/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
     "/proc", "/root", "/run", "/sbin", "/sys", "/usr", "/var"]
)  # fmt: skip


def system_directory_problem(path: Path) -> str | None:
    """Why `path` (absolute) cannot be BASE_DIRECTORY, or None when it can."""
    canonical = "/" + "/".join(Path(os.path.normpath(path)).parts[1:])  # `//etc` is `/etc`
    if canonical not in SYSTEM_DIRECTORIES:
        return None
    what = "the root of the file system" if canonical == "/" else "a system directory"
    return (
        f"must not be {canonical}: that is {what}, and the file tools would let clients read "
        "and overwrite the system's own files; give the agent a folder of its own "
        "(e.g. /var/lib/mcp-mesh/data)"
    )


def short_host_name() -> str:
    """This machine's host name without its domain."""
    return socket.gethostname().split(".", 1)[0] or "localhost"


def default_agent_name() -> str:
    """`mcp-agent-<host>`: stable across restarts, so the registry keeps one entry per host."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", short_host_name()).strip("-._") or "localhost"
    return f"mcp-agent-{host}"[:63]


@dataclass(frozen=True)
class AgentConfig:
    """Everything the agent reads from its environment: attribute = variable in snake_case,
    default = what the variable unset (or empty, as systemd reads `NAME=`) means."""

    token: Secret  # MCP_MESH_TOKEN or the file MCP_MESH_TOKEN_FILE names; required
    # MCP_MESH_CLIENTS_FILE: `name sha256-hex` a line, each client's token (agent.clients);
    # None (or a file without clients): every client shares MCP_MESH_TOKEN (deprecated)
    clients_file: Path | None = None
    registry_token: Secret | None = None  # MCP_MESH_REGISTRY_TOKEN(_FILE)
    mesh_registry_url: str = f"http://localhost:{REGISTRY_PORT}"
    agent_name: str = field(default_factory=default_agent_name)
    health_interval: int = 30  # seconds
    fallback_mode: bool = True
    security_context: str = "default"
    base_directory: Path | None = None  # None: the file tools refuse every call
    max_file_size: int = 10 * 1024 * 1024  # bytes
    allowed_extensions: frozenset[str] = frozenset({".txt", ".json", ".yaml"})
    log_level: str = "INFO"
    max_concurrent_ops: int = 100
    request_timeout: int = 30  # seconds
    retry_attempts: int = 3
    retry_initial_delay: int = 1000  # milliseconds
    retry_max_delay: int = 30000  # milliseconds
    retry_backoff: float = 2.0
    host: str = "0.0.0.0"  # MCP_MESH_HOST
    port: int = AGENT_PORT  # MCP_MESH_PORT
    log_format: str = "json"  # MCP_MESH_LOG_FORMAT
    advertise_host: str = field(default_factory=socket.gethostname)  # MCP_MESH_ADVERTISE_HOST
    allowed_hosts: tuple[str, ...] = ()  # MCP_MESH_ALLOWED_HOSTS
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")  # MCP_MESH_TRUSTED_PROXIES
    security_window: int = 60  # MCP_MESH_SECURITY_WINDOW, minutes a source's events count
    security_threshold: int = 100  # MCP_MESH_SECURITY_THRESHOLD, events per source that block
    graceful_timeout: float = 10.0  # MCP_MESH_GRACEFUL_TIMEOUT, seconds
    drain_delay: float = 2.0  # MCP_MESH_DRAIN_DELAY, seconds
    state_dir: Path = STATE_DIR  # MCP_MESH_STATE_DIR
    # MCP_MESH_BACKUP_DIR, as the backup commands read it: /metrics reports its newest archive
    backup_dir: Path = BACKUP_DIR
    incident_interval: int = 30  # MCP_MESH_INCIDENT_INTERVAL, seconds
    audit_log: Path | None = None  # MCP_MESH_AUDIT_LOG; unset: audit records go to stdout
    database_url: Secret | None = None  # DATABASE_URL
    connection_limits: ConnectionLimits = field(default_factory=ConnectionLimits)  # MCP_MESH_*
    max_buffered_bytes: int = 32 * 1024 * 1024  # MCP_MESH_MAX_BUFFERED_BYTES, /mcp bodies
    tls: TlsSettings = field(default_factory=TlsSettings)  # MCP_MESH_TLS_{CERT,KEY,CA}_FILE
    test_tool_delay: float = 0.0  # MCP_MESH_TEST_TOOL_DELAY, seconds; TEST ONLY
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def redacted(self) -> dict[str, Any]:
        """The settings as plain JSON-able values, secrets replaced by `(set)` / `(not set)`."""
        shown: dict[str, Any] = {}
        for item in fields(self):
            if item.name == "warnings":
                continue
            value = getattr(self, item.name)
            if isinstance(value, Secret):
                value = "(set)"
            elif value is None and item.name in _SECRET_FIELDS:
                value = "(not set)"
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, ConnectionLimits):
                value = asdict(value)
            elif isinstance(value, TlsSettings):
                value = {k: None if v is None else str(v) for k, v in asdict(value).items()}
            elif isinstance(value, frozenset):
                value = sorted(value)
            elif isinstance(value, tuple):
                value = list(value)
            shown[item.name] = value
        return shown


_SECRET_FIELDS = frozenset({"token", "registry_token", "database_url"})


@dataclass(frozen=True)
class AgentEnvCheck:
    """The outcome of checking an environment: a config when it is valid, and what was found.

    `best_effort` holds every valid value and the default in place of each bad one: for the
    ops commands that need the paths of a host whose configuration is broken elsewhere.
    """

    config: AgentConfig | None
    problems: tuple[ConfigProblem, ...]
    warnings: tuple[str, ...]
    best_effort: AgentConfig


def load_agent_config(env: Mapping[str, str] | None = None) -> AgentConfig:
    """Parse and validate the agent's environment (default: this process's).

    Raises ConfigError naming every bad variable; the config's `warnings` list the rest.
    """
    checked = check_agent_env(os.environ if env is None else env)
    if checked.config is None:
        raise ConfigError(list(checked.problems))
    return checked.config


def check_agent_env(env: Mapping[str, str]) -> AgentEnvCheck:
    """Every problem and warning in `env`, without raising (check-config reports both)."""
    read = EnvReader(env)
    default = AgentConfig(token=Secret(""))
    token = read.header_token("MCP_MESH_TOKEN", "MCP_MESH_TOKEN_FILE", required=True)
    registry_token = read.header_token(
        "MCP_MESH_REGISTRY_TOKEN", "MCP_MESH_REGISTRY_TOKEN_FILE", required=False
    )
    initial_delay, max_delay = _retry_delays(read, default)
    clients_file = read.absolute_path("MCP_MESH_CLIENTS_FILE", None)
    clients = _read_clients(read, clients_file, token)
    config = AgentConfig(
        token=token or default.token,
        clients_file=clients_file,
        registry_token=registry_token,
        mesh_registry_url=read.url("MESH_REGISTRY_URL", default.mesh_registry_url),
        agent_name=read.text(
            "AGENT_NAME",
            default.agent_name,
            pattern=_NAME_PATTERN,
            what="must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit",
        ),
        health_interval=read.integer(
            "HEALTH_INTERVAL", default.health_interval, minimum=1, maximum=86400, unit="seconds"
        ),
        fallback_mode=read.boolean("FALLBACK_MODE", default.fallback_mode),
        security_context=read.text(
            "SECURITY_CONTEXT",
            default.security_context,
            pattern=_NAME_PATTERN,
            what="must be 1-63 letters, digits, '.', '_' or '-'",
        ),
        base_directory=read.absolute_path("BASE_DIRECTORY", default.base_directory),
        max_file_size=read.integer(
            "MAX_FILE_SIZE",
            default.max_file_size,
            minimum=1,
            maximum=MAX_FILE_SIZE_LIMIT,
            unit="bytes",
        ),
        allowed_extensions=read.extensions("ALLOWED_EXTENSIONS", default.allowed_extensions),
        log_level=read.choice("LOG_LEVEL", default.log_level, LOG_LEVELS, upper=True),
        max_concurrent_ops=read.integer(
            "MAX_CONCURRENT_OPS", default.max_concurrent_ops, minimum=1, maximum=100_000
        ),
        request_timeout=read.integer(
            "REQUEST_TIMEOUT", default.request_timeout, minimum=1, maximum=3600, unit="seconds"
        ),
        retry_attempts=read.integer(
            "RETRY_ATTEMPTS", default.retry_attempts, minimum=0, maximum=100
        ),
        retry_initial_delay=initial_delay,
        retry_max_delay=max_delay,
        retry_backoff=read.number(
            "RETRY_BACKOFF", default.retry_backoff, minimum=1.0, maximum=10.0
        ),
        host=read.host("MCP_MESH_HOST", default.host),
        port=read.integer("MCP_MESH_PORT", default.port, minimum=1, maximum=65535),
        log_format=read.choice("MCP_MESH_LOG_FORMAT", default.log_format, LOG_FORMATS),
        advertise_host=read.host("MCP_MESH_ADVERTISE_HOST", default.advertise_host),
        allowed_hosts=read.host_list("MCP_MESH_ALLOWED_HOSTS"),
        trusted_proxies=read.networks("MCP_MESH_TRUSTED_PROXIES", default.trusted_proxies),
        security_window=read.integer(
            "MCP_MESH_SECURITY_WINDOW",
            default.security_window,
            minimum=1,
            maximum=1440,
            unit="minutes",
        ),
        security_threshold=read.integer(
            "MCP_MESH_SECURITY_THRESHOLD", default.security_threshold, minimum=1, maximum=1_000_000
        ),
        graceful_timeout=read.number(
            "MCP_MESH_GRACEFUL_TIMEOUT",
            default.graceful_timeout,
            minimum=0.0,
            maximum=3600.0,
            unit="seconds",
        ),
        drain_delay=read.number(
            "MCP_MESH_DRAIN_DELAY", default.drain_delay, minimum=0.0, maximum=600.0, unit="seconds"
        ),
        state_dir=read.absolute_path("MCP_MESH_STATE_DIR", default.state_dir) or default.state_dir,
        backup_dir=read.absolute_path("MCP_MESH_BACKUP_DIR", default.backup_dir)
        or default.backup_dir,
        incident_interval=read.integer(
            "MCP_MESH_INCIDENT_INTERVAL",
            default.incident_interval,
            minimum=1,
            maximum=86400,
            unit="seconds",
        ),
        audit_log=read.absolute_path("MCP_MESH_AUDIT_LOG", default.audit_log),
        database_url=read.secret("DATABASE_URL"),
        connection_limits=read_connection_limits(read, "MCP_MESH_"),
        max_buffered_bytes=read.integer(
            "MCP_MESH_MAX_BUFFERED_BYTES", default.max_buffered_bytes, minimum=1, unit="bytes"
        ),
        tls=read_tls_settings(read, "MCP_MESH_"),
        test_tool_delay=read.number(
            "MCP_MESH_TEST_TOOL_DELAY",
            default.test_tool_delay,
            minimum=0.0,
            maximum=600.0,
            unit="seconds",
        ),
    )
    _warn_about_retired_variables(read)
    if config.base_directory is not None:
        base_problem = system_directory_problem(config.base_directory)
        if base_problem is not None:
            read.problem("BASE_DIRECTORY", base_problem)
    read.unknown_variables(AGENT_PREFIXES)
    if read.problems:
        return AgentEnvCheck(None, tuple(read.problems), tuple(read.warnings), config)
    _warn_about_risky_settings(read, config)
    if not clients:
        read.warn("MCP_MESH_CLIENTS_FILE", NO_CLIENTS_WARNING)
    config = replace(config, warnings=tuple(read.warnings))
    return AgentEnvCheck(config, (), config.warnings, config)


def _read_clients(read: EnvReader, path: Path | None, token: Secret | None) -> list[str]:
    """The clients the file names (none when unset), after naming the problem if it cannot
    be used: the agent then does not start, and check-config refuses the env file."""
    if path is None:
        return []
    try:
        clients = read_clients_file(path)
    except ClientsFileError as exc:
        read.problem("MCP_MESH_CLIENTS_FILE", str(exc))
        return []
    if token is not None and digest(token.reveal()) in clients:
        name = clients[digest(token.reveal())]
        read.problem(
            "MCP_MESH_CLIENTS_FILE",
            f"client {name!r} has MCP_MESH_TOKEN as its token; give it a token of its own",
        )
    return sorted(clients.values())


def _retry_delays(read: EnvReader, default: AgentConfig) -> tuple[int, int]:
    """RETRY_INITIAL_DELAY and RETRY_MAX_DELAY, the maximum no smaller than the first delay."""
    initial_delay = read.integer(
        "RETRY_INITIAL_DELAY", default.retry_initial_delay, minimum=1, unit="milliseconds"
    )
    max_delay = read.integer(
        "RETRY_MAX_DELAY", default.retry_max_delay, minimum=1, unit="milliseconds"
    )
    if max_delay < initial_delay and read.raw("RETRY_MAX_DELAY") is not None:
        read.problem(
            "RETRY_MAX_DELAY",
            f"must be >= RETRY_INITIAL_DELAY ({initial_delay} ms), got {max_delay} ms",
        )
    elif max_delay < initial_delay:
        read.problem(
            "RETRY_INITIAL_DELAY",
            f"must be <= RETRY_MAX_DELAY ({max_delay} ms), got {initial_delay} ms",
        )
    return initial_delay, max_delay


def _warn_about_retired_variables(read: EnvReader) -> None:
    for name, reason in RETIRED_VARIABLES.items():
        if read.raw(name) is not None:
            read.warn(name, f"no longer used ({reason}), ignored; remove it from the env file")


def _warn_about_risky_settings(read: EnvReader, config: AgentConfig) -> None:
    if config.base_directory is None:
        read.warn("BASE_DIRECTORY", "not set: the file tools refuse every call")
    if config.test_tool_delay > 0:
        read.warn("MCP_MESH_TEST_TOOL_DELAY", "test-only setting: every tool call is delayed")
    if config.registry_token is None:
        read.warn(
            "MCP_MESH_REGISTRY_TOKEN",
            "not set: a registry that requires a token will refuse this agent",
        )
    registry = urlsplit(config.mesh_registry_url)
    if config.tls.enabled and registry.scheme == "http":
        read.warn(
            "MESH_REGISTRY_URL",
            "http:// while this agent serves TLS: its registry calls and token travel in clear",
        )
    if config.tls.enabled and config.tls.ca_file is None:
        read.warn(
            "MCP_MESH_TLS_CA_FILE",
            "not set: the ops commands verify this agent against the system's CAs only",
        )
    own_names = {"localhost", "127.0.0.1", "::1", config.advertise_host, short_host_name()}
    registry_port = registry.port or (443 if registry.scheme == "https" else 80)
    if registry.hostname in own_names and registry_port == config.port:
        read.warn(
            "MESH_REGISTRY_URL",
            f"points at this agent's own port {config.port}; set the registry's address",
        )
    if config.drain_delay + config.graceful_timeout > 85:
        read.warn(
            "MCP_MESH_GRACEFUL_TIMEOUT",
            "drain delay plus graceful timeout exceed systemd's default 90 s stop timeout",
        )
