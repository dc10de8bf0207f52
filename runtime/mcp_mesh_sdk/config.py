"""The agent's environment, parsed and validated in one place.

`load_agent_config(env)` reads every variable the agent understands, checks all of them and
raises one `ConfigError` that lists every bad variable and why. Unknown variables carrying the
agent's prefixes (`MCP_MESH_`, `MESH_`) and risky-but-valid settings come back as warnings on
the config. Secrets are wrapped in `Secret`, whose repr and str never show the value.

`EnvReader` holds the parsing rules (integers, booleans, paths, URLs, host names, secrets read
from a file) so that other services' configurations validate the same way.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import ipaddress
import os
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mcp_mesh_sdk.errors import ConfigError, ConfigProblem

AGENT_PREFIXES = ("MCP_MESH_", "MESH_")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "text")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_LABEL_PATTERN = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_EXTENSION_PATTERN = re.compile(r"^(\.[a-z0-9_+-]+)+$")
_TOKEN_PATTERN = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: what an HTTP header can carry
SHORT_TOKEN = 16
MAX_FILE_SIZE_LIMIT = 1024**3


class Secret:
    """A secret string: never shown by repr/str/format, compared in constant time."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that needs it (a header, a comparison)."""
        return self._value

    def matches(self, candidate: str) -> bool:
        """Constant-time comparison with what a caller presented (digests hide the length)."""
        mine = hashlib.sha256(self._value.encode()).digest()
        theirs = hashlib.sha256(candidate.encode()).digest()
        return hmac.compare_digest(mine, theirs)

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"

    def __format__(self, spec: str) -> str:
        return "********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and self.matches(other._value)

    def __hash__(self) -> int:
        return hash(Secret)

    def __reduce__(self) -> Any:
        raise TypeError("secrets are not pickled")


def short_host_name() -> str:
    """This machine's host name without its domain."""
    return socket.gethostname().split(".", 1)[0] or "localhost"


def default_agent_name() -> str:
    """`mcp-agent-<host>`: stable across restarts, so the registry keeps one entry per host."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", short_host_name()).strip("-._") or "localhost"
    return f"mcp-agent-{host}"[:63]


def is_host_name_or_address(value: str) -> bool:
    """An IP address (v4 or v6) or an RFC 1123 host name."""
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        pass
    else:
        return True
    name = value.removesuffix(".")
    if not name or len(name) > 253:
        return False
    return all(_LABEL_PATTERN.match(label) for label in name.split("."))


class EnvReader:
    """Reads variables from one environment, collecting every problem instead of stopping."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[ConfigProblem] = []
        self.warnings: list[str] = []
        self.known: set[str] = set()

    # -- plumbing ----------------------------------------------------------------------------
    def raw(self, name: str) -> str | None:
        """The stripped value, or None when unset or empty (systemd's `NAME=` means unset)."""
        self.known.add(name)
        value = self.env.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def problem(self, name: str, reason: str) -> None:
        self.problems.append(ConfigProblem(name, reason))

    def warn(self, name: str, reason: str) -> None:
        self.warnings.append(f"{name}: {reason}")

    def unknown_variables(self, prefixes: Iterable[str]) -> None:
        """Warn about every variable with one of `prefixes` that no reader asked for."""
        prefixes = tuple(prefixes)
        for name in sorted(self.env):
            if name.startswith(prefixes) and name not in self.known:
                close = difflib.get_close_matches(name, sorted(self.known), n=1, cutoff=0.75)
                hint = f" (did you mean {close[0]}?)" if close else ""
                self.warn(name, f"unknown variable, ignored{hint}")

    def finish(self) -> None:
        if self.problems:
            raise ConfigError(list(self.problems))

    # -- typed readers -----------------------------------------------------------------------
    def text(
        self, name: str, default: str, *, pattern: re.Pattern[str] | None = None, what: str = ""
    ) -> str:
        value = self.raw(name)
        if value is None:
            return default
        if pattern is not None and not pattern.match(value):
            self.problem(name, f"{what or 'invalid value'}, got {value!r}")
            return default
        return value

    def integer(
        self,
        name: str,
        default: int,
        *,
        minimum: int = 0,
        maximum: int | None = None,
        unit: str = "",
    ) -> int:
        value = self.raw(name)
        if value is None:
            return default
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        if maximum is not None:
            kind = f"an integer from {minimum} to {maximum}"
        suffix = f" ({unit})" if unit else ""
        try:
            number = int(value, 10)
        except ValueError:
            self.problem(name, f"must be {kind}{suffix}, got {value!r}")
            return default
        if number < minimum or (maximum is not None and number > maximum):
            self.problem(name, f"must be {kind}{suffix}, got {value!r}")
            return default
        return number

    def number(
        self,
        name: str,
        default: float,
        *,
        minimum: float = 0.0,
        maximum: float | None = None,
        unit: str = "",
        allow_minimum: bool = True,
    ) -> float:
        value = self.raw(name)
        if value is None:
            return default
        bound = f">= {minimum:g}" if allow_minimum else f"> {minimum:g}"
        kind = f"a number {bound}" + (f" and <= {maximum:g}" if maximum is not None else "")
        suffix = f" ({unit})" if unit else ""
        try:
            number = float(value)
        except ValueError:
            self.problem(name, f"must be {kind}{suffix}, got {value!r}")
            return default
        too_small = number < minimum or (not allow_minimum and number == minimum)
        if number != number or too_small or (maximum is not None and number > maximum):
            self.problem(name, f"must be {kind}{suffix}, got {value!r}")
            return default
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        self.problem(name, f"must be true or false (also 1/0, yes/no, on/off), got {value!r}")
        return default

    def choice(
        self, name: str, default: str, choices: Iterable[str], *, upper: bool = False
    ) -> str:
        options = tuple(choices)
        value = self.raw(name)
        if value is None:
            return default
        normal = value.upper() if upper else value.lower()
        if normal == "WARN" and upper:
            normal = "WARNING"
        if normal not in options:
            self.problem(name, f"must be one of {', '.join(options)}, got {value!r}")
            return default
        return normal

    def absolute_path(self, name: str, default: Path | None) -> Path | None:
        value = self.raw(name)
        if value is None:
            return default
        path = Path(value)
        if not path.is_absolute():
            self.problem(name, f"must be an absolute path, got {value!r}")
            return default
        return Path(os.path.normpath(path))

    def url(self, name: str, default: str) -> str:
        value = self.raw(name)
        if value is None:
            return default
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError:
            self.problem(name, "is not a valid URL (check the port)")
            return default
        if parts.username is not None or parts.password is not None:
            self.problem(name, "must not carry credentials (use a token variable instead)")
            return default
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.problem(name, f"must be an http:// or https:// URL with a host, got {value!r}")
            return default
        if port == 0:
            self.problem(name, f"port must be from 1 to 65535, got {value!r}")
            return default
        if parts.query or parts.fragment:
            self.problem(name, f"must not have a query or fragment, got {value!r}")
            return default
        return value.rstrip("/")

    def host(self, name: str, default: str) -> str:
        value = self.raw(name)
        if value is None:
            return default
        if not is_host_name_or_address(value):
            self.problem(name, f"must be a host name or an IP address, got {value!r}")
            return default
        return value.strip("[]")

    def host_list(self, name: str) -> tuple[str, ...]:
        """Comma-separated `host`, `host:port` or `host:*` entries (IPv6 as `[addr]:port`)."""
        value = self.raw(name)
        if value is None:
            return ()
        entries: list[str] = []
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            host, port = _split_host_port(item)
            port_ok = port is None or port == "*" or (port.isdigit() and 0 < int(port) < 65536)
            if not is_host_name_or_address(host) or not port_ok:
                self.problem(name, f"{item!r} is not a host name or address (optionally :port)")
                continue
            entries.append(item)
        return tuple(entries)

    def networks(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        """Comma-separated IP addresses or CIDR networks (or `*` for any)."""
        value = self.raw(name)
        if value is None:
            return default
        entries: list[str] = []
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            if item != "*":
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    self.problem(name, f"{item!r} is not an IP address or network")
                    continue
            entries.append(item)
        return tuple(entries)

    def extensions(self, name: str, default: frozenset[str]) -> frozenset[str]:
        value = self.raw(name)
        if value is None:
            return default
        found: set[str] = set()
        for item in (part.strip().lower() for part in value.split(",")):
            if not item:
                continue
            if not item.startswith("."):
                self.problem(name, f"{item!r} must start with a dot (write '.{item}')")
            elif not _EXTENSION_PATTERN.match(item):
                self.problem(name, f"{item!r} is not a file extension like '.txt'")
            else:
                found.add(item)
        if not found and not any(p.variable == name for p in self.problems):
            self.problem(name, "lists no extension; give at least one, e.g. '.txt'")
        return frozenset(found) if found else default

    def secret(
        self, name: str, file_name: str | None = None, *, required: bool = False
    ) -> tuple[Secret | None, Path | None]:
        """A secret given inline (`name`) or as a file path (`file_name`); never echoed."""
        inline = self.raw(name)
        path_value = self.raw(file_name) if file_name else None
        if inline is not None and path_value is not None:
            self.problem(name, f"set either {name} or {file_name}, not both")
            return None, None
        token_file: Path | None = None
        if path_value is not None:
            assert file_name is not None
            token_file = Path(path_value)
            if not token_file.is_absolute():
                self.problem(file_name, f"must be an absolute path, got {path_value!r}")
                return None, None
            try:
                inline = token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                self.problem(file_name, f"cannot read {path_value}: {reason}")
                return None, token_file
            except UnicodeDecodeError:
                self.problem(file_name, f"{path_value} is not UTF-8 text")
                return None, token_file
            if not inline:
                self.problem(file_name, f"{path_value} is empty")
                return None, token_file
        if inline is None:
            if required:
                either = f" or {file_name}" if file_name else ""
                self.problem(name, f"not set; set {name}{either}")
            return None, None
        return Secret(inline), token_file

    def header_token(
        self, name: str, file_name: str, *, required: bool
    ) -> tuple[Secret | None, Path | None]:
        """A bearer token: a secret that must fit in an HTTP header."""
        secret, path = self.secret(name, file_name, required=required)
        source = file_name if path is not None else name
        if secret is None:
            return None, path
        if not _TOKEN_PATTERN.match(secret.reveal()):
            self.problem(source, "holds spaces or characters an HTTP header cannot carry")
            return None, path
        if len(secret.reveal()) < SHORT_TOKEN:
            self.warn(
                source, f"token is shorter than {SHORT_TOKEN} characters; use a long random one"
            )
        return secret, path


def _split_host_port(item: str) -> tuple[str, str | None]:
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else None
    if item.count(":") == 1:
        host, _, port = item.partition(":")
        return host, port
    return item, None


DEFAULT_EXTENSIONS = frozenset({".txt", ".json", ".yaml"})


@dataclass(frozen=True)
class AgentConfig:
    """Everything the agent reads from its environment; attribute = variable in snake_case."""

    mesh_registry_url: str
    agent_name: str
    health_interval: int
    fallback_mode: bool
    security_context: str
    base_directory: Path | None
    max_file_size: int
    allowed_extensions: frozenset[str]
    log_level: str
    cache_ttl: int
    max_concurrent_ops: int
    request_timeout: int
    retry_attempts: int
    retry_initial_delay: int  # milliseconds
    retry_max_delay: int  # milliseconds
    retry_backoff: float
    host: str
    port: int
    log_format: str
    token: Secret
    token_file: Path | None
    registry_token: Secret | None
    registry_token_file: Path | None
    advertise_host: str
    allowed_hosts: tuple[str, ...]
    trusted_proxies: tuple[str, ...]
    graceful_timeout: float
    drain_delay: float
    state_dir: Path
    incident_interval: int
    secret_key: Secret | None
    database_url: Secret | None
    test_tool_delay: float
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
            elif isinstance(value, frozenset):
                value = sorted(value)
            elif isinstance(value, tuple):
                value = list(value)
            shown[item.name] = value
        return shown


_SECRET_FIELDS = frozenset({"token", "registry_token", "secret_key", "database_url"})

# Variable -> one line on what it does; check-config and the docs use it.
AGENT_VARIABLES: dict[str, str] = {
    "MESH_REGISTRY_URL": "registry base URL (default http://localhost:8080)",
    "AGENT_NAME": "name the agent registers as (default mcp-agent-<host>)",
    "HEALTH_INTERVAL": "seconds between registry heartbeats (default 30)",
    "FALLBACK_MODE": "serve while the registry is unreachable (default true)",
    "SECURITY_CONTEXT": "security context label reported by /health/detailed (default 'default')",
    "BASE_DIRECTORY": "absolute directory the file tools are confined to (default: tools off)",
    "MAX_FILE_SIZE": "largest file read or written, bytes (default 10485760)",
    "ALLOWED_EXTENSIONS": "comma-separated extensions the file tools accept (.txt,.json,.yaml)",
    "LOG_LEVEL": "DEBUG, INFO, WARNING, ERROR or CRITICAL (default INFO)",
    "CACHE_TTL": "seconds cached results stay valid (default 300)",
    "MAX_CONCURRENT_OPS": "file operations running at once (default 100)",
    "REQUEST_TIMEOUT": "seconds one operation or registry call may take (default 30)",
    "RETRY_ATTEMPTS": "registry call retries before giving up a round (default 3)",
    "RETRY_INITIAL_DELAY": "first retry delay, milliseconds (default 1000)",
    "RETRY_MAX_DELAY": "longest retry delay, milliseconds (default 30000)",
    "RETRY_BACKOFF": "retry delay multiplier, >= 1 (default 2.0)",
    "MCP_MESH_HOST": "listen address (default 0.0.0.0)",
    "MCP_MESH_PORT": "listen port (default 8080)",
    "MCP_MESH_LOG_FORMAT": "json or text (default json)",
    "MCP_MESH_TOKEN": "bearer token /mcp requires (or MCP_MESH_TOKEN_FILE)",
    "MCP_MESH_TOKEN_FILE": "absolute path of a file holding the /mcp bearer token",
    "MCP_MESH_REGISTRY_TOKEN": "token presented to the registry (or MCP_MESH_REGISTRY_TOKEN_FILE)",
    "MCP_MESH_REGISTRY_TOKEN_FILE": "absolute path of a file holding the registry token",
    "MCP_MESH_ADVERTISE_HOST": "host the agent registers as (default: the host name)",
    "MCP_MESH_ALLOWED_HOSTS": "extra Host header values /mcp accepts, comma-separated",
    "MCP_MESH_TRUSTED_PROXIES": "proxies whose X-Forwarded-For is believed (127.0.0.1,::1)",
    "MCP_MESH_GRACEFUL_TIMEOUT": "seconds in-flight requests get after SIGTERM (default 10)",
    "MCP_MESH_DRAIN_DELAY": "seconds /ready answers 503 before the listener closes (default 2)",
    "MCP_MESH_STATE_DIR": "state directory (default /var/lib/mcp-mesh)",
    "MCP_MESH_INCIDENT_INTERVAL": "seconds between incident checks (default 30)",
    "SECRET_KEY": "secret, accepted and never shown",
    "DATABASE_URL": "secret, accepted and never shown",
    "MCP_MESH_TEST_TOOL_DELAY": "TEST ONLY: seconds every tool call sleeps first (default 0)",
}


@dataclass(frozen=True)
class AgentEnvCheck:
    """The outcome of checking an environment: a config when it is valid, and what was found."""

    config: AgentConfig | None
    problems: tuple[ConfigProblem, ...]
    warnings: tuple[str, ...]


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
    token, token_file = read.header_token("MCP_MESH_TOKEN", "MCP_MESH_TOKEN_FILE", required=True)
    registry_token, registry_token_file = read.header_token(
        "MCP_MESH_REGISTRY_TOKEN", "MCP_MESH_REGISTRY_TOKEN_FILE", required=False
    )
    secret_key, _ = read.secret("SECRET_KEY")
    database_url, _ = read.secret("DATABASE_URL")
    initial_delay = read.integer("RETRY_INITIAL_DELAY", 1000, minimum=1, unit="milliseconds")
    max_delay = read.integer("RETRY_MAX_DELAY", 30000, minimum=1, unit="milliseconds")
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
    config = AgentConfig(
        mesh_registry_url=read.url("MESH_REGISTRY_URL", "http://localhost:8080"),
        agent_name=read.text(
            "AGENT_NAME",
            default_agent_name(),
            pattern=_NAME_PATTERN,
            what="must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit",
        ),
        health_interval=read.integer(
            "HEALTH_INTERVAL", 30, minimum=1, maximum=86400, unit="seconds"
        ),
        fallback_mode=read.boolean("FALLBACK_MODE", True),
        security_context=read.text(
            "SECURITY_CONTEXT",
            "default",
            pattern=_NAME_PATTERN,
            what="must be 1-63 letters, digits, '.', '_' or '-'",
        ),
        base_directory=read.absolute_path("BASE_DIRECTORY", None),
        max_file_size=read.integer(
            "MAX_FILE_SIZE", 10 * 1024 * 1024, minimum=1, maximum=MAX_FILE_SIZE_LIMIT, unit="bytes"
        ),
        allowed_extensions=read.extensions("ALLOWED_EXTENSIONS", DEFAULT_EXTENSIONS),
        log_level=read.choice("LOG_LEVEL", "INFO", LOG_LEVELS, upper=True),
        cache_ttl=read.integer("CACHE_TTL", 300, minimum=0, unit="seconds"),
        max_concurrent_ops=read.integer("MAX_CONCURRENT_OPS", 100, minimum=1, maximum=100_000),
        request_timeout=read.integer(
            "REQUEST_TIMEOUT", 30, minimum=1, maximum=3600, unit="seconds"
        ),
        retry_attempts=read.integer("RETRY_ATTEMPTS", 3, minimum=0, maximum=100),
        retry_initial_delay=initial_delay,
        retry_max_delay=max_delay,
        retry_backoff=read.number("RETRY_BACKOFF", 2.0, minimum=1.0, maximum=10.0),
        host=read.host("MCP_MESH_HOST", "0.0.0.0"),
        port=read.integer("MCP_MESH_PORT", 8080, minimum=1, maximum=65535),
        log_format=read.choice("MCP_MESH_LOG_FORMAT", "json", LOG_FORMATS),
        token=token or Secret(""),
        token_file=token_file,
        registry_token=registry_token,
        registry_token_file=registry_token_file,
        advertise_host=read.host("MCP_MESH_ADVERTISE_HOST", socket.gethostname()),
        allowed_hosts=read.host_list("MCP_MESH_ALLOWED_HOSTS"),
        trusted_proxies=read.networks("MCP_MESH_TRUSTED_PROXIES", ("127.0.0.1", "::1")),
        graceful_timeout=read.number(
            "MCP_MESH_GRACEFUL_TIMEOUT", 10.0, minimum=0.0, maximum=3600.0, unit="seconds"
        ),
        drain_delay=read.number(
            "MCP_MESH_DRAIN_DELAY", 2.0, minimum=0.0, maximum=600.0, unit="seconds"
        ),
        state_dir=read.absolute_path("MCP_MESH_STATE_DIR", Path("/var/lib/mcp-mesh"))
        or Path("/var/lib/mcp-mesh"),
        incident_interval=read.integer(
            "MCP_MESH_INCIDENT_INTERVAL", 30, minimum=1, maximum=86400, unit="seconds"
        ),
        secret_key=secret_key,
        database_url=database_url,
        test_tool_delay=read.number(
            "MCP_MESH_TEST_TOOL_DELAY", 0.0, minimum=0.0, maximum=600.0, unit="seconds"
        ),
    )
    read.unknown_variables(AGENT_PREFIXES)
    if read.problems:
        return AgentEnvCheck(None, tuple(read.problems), tuple(read.warnings))
    _warn_about_risky_settings(read, config)
    return AgentEnvCheck(replace(config, warnings=tuple(read.warnings)), (), tuple(read.warnings))


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
