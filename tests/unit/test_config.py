"""The agent's environment: every variable's default, a good value and a bad one."""

from __future__ import annotations

import operator
import pickle
import socket
from pathlib import Path

import pytest

from mcp_mesh_sdk.config import AgentConfig, check_agent_env, default_agent_name, load_agent_config
from mcp_mesh_sdk.constants import AGENT_PORT, REGISTRY_PORT
from mcp_mesh_sdk.envreader import Secret
from mcp_mesh_sdk.errors import ConfigError

TOKEN = "t0ken-that-is-long-enough-1234"


def load(**env: str) -> AgentConfig:
    return load_agent_config({"MCP_MESH_TOKEN": TOKEN, **env})


def problems_of(**env: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        load_agent_config({"MCP_MESH_TOKEN": TOKEN, **env})
    return {problem.variable: problem.reason for problem in caught.value.problems}


DEFAULTS = {
    "mesh_registry_url": "http://localhost:8000",  # the registry's own default port
    "health_interval": 30,
    "fallback_mode": True,
    "security_context": "default",
    "base_directory": None,
    "max_file_size": 10 * 1024 * 1024,
    "allowed_extensions": frozenset({".txt", ".json", ".yaml"}),
    "log_level": "INFO",
    "max_concurrent_ops": 100,
    "request_timeout": 30,
    "retry_attempts": 3,
    "retry_initial_delay": 1000,
    "retry_max_delay": 30000,
    "retry_backoff": 2.0,
    "host": "0.0.0.0",
    "port": 8080,
    "log_format": "json",
    "registry_token": None,
    "allowed_hosts": (),
    "trusted_proxies": ("127.0.0.1", "::1"),
    "security_window": 60,
    "security_threshold": 100,
    "graceful_timeout": 10.0,
    "drain_delay": 2.0,
    "state_dir": Path("/var/lib/mcp-mesh"),
    "incident_interval": 30,
    "database_url": None,
    "test_tool_delay": 0.0,
}


@pytest.mark.parametrize(("attribute", "expected"), sorted(DEFAULTS.items()))
def test_defaults_follow_the_spec(attribute: str, expected: object) -> None:
    assert getattr(load(), attribute) == expected


def test_name_and_advertised_host_default_to_this_host() -> None:
    config = load()
    assert config.agent_name == default_agent_name()
    assert socket.gethostname().split(".")[0] in config.agent_name
    assert config.advertise_host == socket.gethostname()


def test_empty_value_means_unset_like_systemd() -> None:
    assert load(HEALTH_INTERVAL="", MCP_MESH_PORT=" ").health_interval == 30


GOOD = [
    ("MESH_REGISTRY_URL", "https://registry.lab:8000/", "mesh_registry_url",
     "https://registry.lab:8000"),
    ("AGENT_NAME", "agent-1.lab", "agent_name", "agent-1.lab"),
    ("HEALTH_INTERVAL", "5", "health_interval", 5),
    ("FALLBACK_MODE", "false", "fallback_mode", False),
    ("FALLBACK_MODE", "Yes", "fallback_mode", True),
    ("SECURITY_CONTEXT", "production", "security_context", "production"),
    ("BASE_DIRECTORY", "/srv/data/", "base_directory", Path("/srv/data")),
    ("MAX_FILE_SIZE", "1024", "max_file_size", 1024),
    ("ALLOWED_EXTENSIONS", ".MD, .txt,,.tar.gz", "allowed_extensions",
     frozenset({".md", ".txt", ".tar.gz"})),
    ("LOG_LEVEL", "debug", "log_level", "DEBUG"),
    ("LOG_LEVEL", "warn", "log_level", "WARNING"),
    ("MAX_CONCURRENT_OPS", "8", "max_concurrent_ops", 8),
    ("REQUEST_TIMEOUT", "5", "request_timeout", 5),
    ("RETRY_ATTEMPTS", "0", "retry_attempts", 0),
    ("RETRY_INITIAL_DELAY", "250", "retry_initial_delay", 250),
    ("RETRY_MAX_DELAY", "60000", "retry_max_delay", 60000),
    ("RETRY_BACKOFF", "1.5", "retry_backoff", 1.5),
    ("MCP_MESH_HOST", "127.0.0.1", "host", "127.0.0.1"),
    ("MCP_MESH_HOST", "::", "host", "::"),
    ("MCP_MESH_PORT", "9001", "port", 9001),
    ("MCP_MESH_LOG_FORMAT", "TEXT", "log_format", "text"),
    ("MCP_MESH_ADVERTISE_HOST", "agent1.lab", "advertise_host", "agent1.lab"),
    ("MCP_MESH_ALLOWED_HOSTS", "mesh.lab, 10.0.0.5:8080,[::1]:*", "allowed_hosts",
     ("mesh.lab", "10.0.0.5:8080", "[::1]:*")),
    ("MCP_MESH_TRUSTED_PROXIES", "10.0.0.0/24, 192.168.1.5", "trusted_proxies",
     ("10.0.0.0/24", "192.168.1.5")),
    ("MCP_MESH_TRUSTED_PROXIES", "fd00::/8", "trusted_proxies", ("fd00::/8",)),
    ("MCP_MESH_SECURITY_WINDOW", "5", "security_window", 5),
    ("MCP_MESH_SECURITY_THRESHOLD", "20", "security_threshold", 20),
    ("MCP_MESH_GRACEFUL_TIMEOUT", "2.5", "graceful_timeout", 2.5),
    ("MCP_MESH_DRAIN_DELAY", "0", "drain_delay", 0.0),
    ("MCP_MESH_STATE_DIR", "/tmp/state", "state_dir", Path("/tmp/state")),
    ("MCP_MESH_INCIDENT_INTERVAL", "60", "incident_interval", 60),
    ("MCP_MESH_TEST_TOOL_DELAY", "0.5", "test_tool_delay", 0.5),
    ("MCP_MESH_MAX_CONNECTIONS", "200", "connection_limits.max_connections", 200),
    ("MCP_MESH_HEADER_TIMEOUT", "2.5", "connection_limits.header_timeout", 2.5),
    ("MCP_MESH_KEEP_ALIVE_TIMEOUT", "30", "connection_limits.keep_alive_timeout", 30),
    ("MCP_MESH_MAX_BUFFERED_BYTES", "1048576", "max_buffered_bytes", 1048576),
]  # fmt: skip


@pytest.mark.parametrize(("variable", "value", "attribute", "expected"), GOOD)
def test_good_values_are_parsed(
    variable: str, value: str, attribute: str, expected: object
) -> None:
    assert operator.attrgetter(attribute)(load(**{variable: value})) == expected


BAD = [
    ("MESH_REGISTRY_URL", "ftp://registry", "http:// or https://"),
    ("MESH_REGISTRY_URL", "http://registry:99999", "valid URL"),
    ("MESH_REGISTRY_URL", "registry:8000", "http:// or https://"),
    ("AGENT_NAME", "has space", "letters, digits"),
    ("AGENT_NAME", "a/b", "letters, digits"),
    ("HEALTH_INTERVAL", "0", "integer from 1"),
    ("HEALTH_INTERVAL", "30s", "integer from 1"),
    ("HEALTH_INTERVAL", "-5", "integer from 1"),
    ("FALLBACK_MODE", "maybe", "true or false"),
    ("SECURITY_CONTEXT", "bad context!", "letters, digits"),
    ("BASE_DIRECTORY", "data/files", "absolute path"),
    ("MAX_FILE_SIZE", "10MB", "integer from 1"),
    ("MAX_FILE_SIZE", "0", "integer from 1"),
    ("ALLOWED_EXTENSIONS", "txt", "must start with a dot"),
    ("ALLOWED_EXTENSIONS", ".t x t", "not a file extension"),
    ("ALLOWED_EXTENSIONS", ",,", "lists no extension"),
    ("LOG_LEVEL", "LOUD", "one of DEBUG"),
    ("MAX_CONCURRENT_OPS", "0", "integer from 1"),
    ("REQUEST_TIMEOUT", "0", "integer from 1"),
    ("RETRY_ATTEMPTS", "three", "integer from 0"),
    ("RETRY_INITIAL_DELAY", "0", "positive integer"),
    ("RETRY_MAX_DELAY", "1.5", "positive integer"),
    ("RETRY_BACKOFF", "0.5", "number >= 1"),
    ("RETRY_BACKOFF", "fast", "number >= 1"),
    ("MCP_MESH_HOST", "not a host", "host name or an IP"),
    ("MCP_MESH_PORT", "0", "integer from 1 to 65535"),
    ("MCP_MESH_PORT", "65536", "integer from 1 to 65535"),
    ("MCP_MESH_PORT", "http", "integer from 1 to 65535"),
    ("MCP_MESH_LOG_FORMAT", "xml", "one of json, text"),
    ("MCP_MESH_ADVERTISE_HOST", "under_score host", "host name or an IP"),
    ("MCP_MESH_ALLOWED_HOSTS", "good.lab,bad host", "'bad host'"),
    ("MCP_MESH_ALLOWED_HOSTS", "good.lab:70000", "good.lab:70000"),
    ("MCP_MESH_TRUSTED_PROXIES", "10.0.0.0/24,proxy.lab", "'proxy.lab'"),
    ("MCP_MESH_TRUSTED_PROXIES", "*", "'*' trusts every address"),
    ("MCP_MESH_TRUSTED_PROXIES", "10.0.0.5, 0.0.0.0/0", "'0.0.0.0/0' trusts every address"),
    ("MCP_MESH_TRUSTED_PROXIES", "::/0", "any address in X-Forwarded-For"),
    ("MCP_MESH_SECURITY_WINDOW", "0", "integer from 1 to 1440 (minutes)"),
    ("MCP_MESH_SECURITY_WINDOW", "1h", "integer from 1 to 1440"),
    ("MCP_MESH_SECURITY_THRESHOLD", "0", "integer from 1"),
    ("MCP_MESH_GRACEFUL_TIMEOUT", "-1", "number >= 0"),
    ("MCP_MESH_DRAIN_DELAY", "soon", "number >= 0"),
    ("MCP_MESH_STATE_DIR", "state", "absolute path"),
    ("MCP_MESH_INCIDENT_INTERVAL", "0", "integer from 1"),
    ("MCP_MESH_TEST_TOOL_DELAY", "-2", "number >= 0"),
    ("MCP_MESH_MAX_CONNECTIONS", "0", "integer from 1"),
    ("MCP_MESH_HEADER_TIMEOUT", "0", "number > 0"),
    ("MCP_MESH_KEEP_ALIVE_TIMEOUT", "5s", "integer from 1 to 3600 (seconds)"),
    ("MCP_MESH_MAX_BUFFERED_BYTES", "32MB", "positive integer (bytes)"),
]


@pytest.mark.parametrize(("variable", "value", "reason"), BAD)
def test_bad_values_name_the_variable_and_why(variable: str, value: str, reason: str) -> None:
    found = problems_of(**{variable: value})
    assert list(found) == [variable]
    assert reason in found[variable]


def test_every_bad_variable_is_listed_at_once() -> None:
    found = problems_of(
        MCP_MESH_PORT="70000", HEALTH_INTERVAL="x", LOG_LEVEL="loud", BASE_DIRECTORY="rel"
    )
    assert set(found) == {"MCP_MESH_PORT", "HEALTH_INTERVAL", "LOG_LEVEL", "BASE_DIRECTORY"}


@pytest.mark.parametrize(
    "value",
    ["/", "//", "/etc/..", "/etc", "/usr/", "/var", "/proc", "/sys", "/dev", "/boot", "/bin",
     "/sbin", "/lib", "/lib64", "/run", "/root", "/home"],
)  # fmt: skip
def test_the_root_and_the_system_directories_are_refused_as_base_directory(value: str) -> None:
    found = problems_of(BASE_DIRECTORY=value)
    assert list(found) == ["BASE_DIRECTORY"]
    reason = found["BASE_DIRECTORY"]
    assert ("the root of the file system" in reason) is (value in ("/", "//", "/etc/.."))
    assert "a system directory" in reason or "the root of the file system" in reason
    assert "give the agent a folder of its own" in reason


@pytest.mark.parametrize(
    "value", ["/var/lib/mcp-mesh/data", "/srv", "/srv/data", "/home/mesh/data", "/etcetera"]
)
def test_a_folder_of_its_own_is_fine_as_base_directory_even_inside_one(value: str) -> None:
    assert load(BASE_DIRECTORY=value).base_directory == Path(value)


def test_the_agent_role_refuses_the_same_system_directories_before_it_makes_one() -> None:
    import yaml

    from mcp_mesh_sdk.config import SYSTEM_DIRECTORIES

    role_vars = Path(__file__).resolve().parents[2] / "roles" / "mesh_agent" / "vars" / "main.yml"
    listed = yaml.safe_load(role_vars.read_text())["_mesh_agent_system_directories"]
    assert sorted(listed) == sorted(SYSTEM_DIRECTORIES)


def test_retry_max_delay_below_initial_delay_is_refused() -> None:
    found = problems_of(RETRY_INITIAL_DELAY="5000", RETRY_MAX_DELAY="1000")
    assert "must be >= RETRY_INITIAL_DELAY (5000 ms)" in found["RETRY_MAX_DELAY"]


def test_initial_delay_above_default_max_blames_the_initial_delay() -> None:
    found = problems_of(RETRY_INITIAL_DELAY="60000")
    assert "RETRY_MAX_DELAY (30000 ms)" in found["RETRY_INITIAL_DELAY"]


# -- tokens and other secrets ---------------------------------------------------------------


def test_a_token_is_required() -> None:
    with pytest.raises(ConfigError) as caught:
        load_agent_config({})
    assert "MCP_MESH_TOKEN: not set; set MCP_MESH_TOKEN or MCP_MESH_TOKEN_FILE" in str(caught.value)


def test_token_is_read_from_a_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    config = load_agent_config({"MCP_MESH_TOKEN_FILE": str(token_file)})
    assert config.token.reveal() == TOKEN
    assert TOKEN not in str(config.redacted())


def test_unreadable_token_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    with pytest.raises(ConfigError) as caught:
        load_agent_config({"MCP_MESH_TOKEN_FILE": str(missing)})
    assert f"MCP_MESH_TOKEN_FILE: cannot read {missing}: No such file" in str(caught.value)


def test_empty_or_relative_token_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        load_agent_config({"MCP_MESH_TOKEN_FILE": str(empty)})
    with pytest.raises(ConfigError, match="absolute path"):
        load_agent_config({"MCP_MESH_TOKEN_FILE": "token.txt"})


def test_token_and_token_file_together_are_ambiguous(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    with pytest.raises(ConfigError, match="not both"):
        load(MCP_MESH_TOKEN_FILE=str(token_file))


def test_token_that_cannot_travel_in_a_header_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_agent_config({"MCP_MESH_TOKEN": "secret with spaces inside it"})
    assert "HTTP header" in str(caught.value)
    assert "secret with spaces" not in str(caught.value)


def test_short_token_is_accepted_with_a_warning() -> None:
    config = load_agent_config({"MCP_MESH_TOKEN": "short"})
    assert any(w.startswith("MCP_MESH_TOKEN: token is shorter") for w in config.warnings)


def test_registry_token_from_file(tmp_path: Path) -> None:
    token_file = tmp_path / "registry-token"
    token_file.write_text("registry-token-0123456789")
    config = load(MCP_MESH_REGISTRY_TOKEN_FILE=str(token_file))
    assert config.registry_token is not None
    assert config.registry_token.reveal() == "registry-token-0123456789"


def test_secrets_never_show_in_repr_str_or_redacted_settings() -> None:
    values = {
        "MCP_MESH_REGISTRY_TOKEN": "registry-secret-value-42",
        "SECRET_KEY": "the-secret-key-value",
        "DATABASE_URL": "postgresql://user:hunter2@db/mesh",
    }
    config = load(**values)
    shown = repr(config) + str(config) + str(config.redacted()) + f"{config.token}"
    shown += str(config.warnings)
    for secret in [TOKEN, *values.values()]:
        assert secret not in shown
    assert config.redacted()["database_url"] == "(set)"
    assert config.database_url is not None
    assert config.database_url.reveal() == "postgresql://user:hunter2@db/mesh"


def test_secret_compares_by_value_and_refuses_pickling() -> None:
    assert Secret("abc").matches("abc")
    assert not Secret("abc").matches("abd")
    with pytest.raises(TypeError):
        pickle.dumps(Secret("abc"))


def test_registry_url_with_credentials_is_refused_without_echoing_them() -> None:
    found = problems_of(MESH_REGISTRY_URL="http://admin:hunter2@registry:8000")
    assert "credentials" in found["MESH_REGISTRY_URL"]
    assert "hunter2" not in found["MESH_REGISTRY_URL"]


# -- warnings -------------------------------------------------------------------------------


def test_unknown_prefixed_variables_are_warnings_with_a_suggestion() -> None:
    config = load(MCP_MESH_PROT="9000", MESH_FOO="1", UNRELATED_VAR="x")
    assert "MCP_MESH_PROT: unknown variable, ignored (did you mean MCP_MESH_PORT?)" in (
        config.warnings
    )
    assert any(w.startswith("MESH_FOO: unknown variable") for w in config.warnings)
    assert not any("UNRELATED_VAR" in w for w in config.warnings)


def test_risky_settings_are_warned_about() -> None:
    config = load(MCP_MESH_PORT="8080", MESH_REGISTRY_URL="http://127.0.0.1:8080")
    assert any(w.startswith("MESH_REGISTRY_URL: points at this agent") for w in config.warnings)
    assert any(w.startswith("BASE_DIRECTORY: not set") for w in config.warnings)
    delayed = load(MCP_MESH_TEST_TOOL_DELAY="1")
    assert any("test-only" in w for w in delayed.warnings)


def test_check_reports_warnings_even_when_the_environment_is_bad() -> None:
    checked = check_agent_env({"MCP_MESH_TOKEN": TOKEN, "MCP_MESH_PORT": "x", "MESH_X": "1"})
    assert checked.config is None
    assert [p.variable for p in checked.problems] == ["MCP_MESH_PORT"]
    assert any(w.startswith("MESH_X") for w in checked.warnings)


def test_config_is_frozen() -> None:
    config = load()
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]


# -- variables of an earlier release, and the registry's address ----------------------------


@pytest.mark.parametrize("variable", ["CACHE_TTL", "SECRET_KEY"])
def test_retired_variables_are_ignored_with_a_warning_naming_only_the_variable(
    variable: str,
) -> None:
    value = "-1-not-even-valid-secret-value"
    config = load(**{variable: value})
    warnings = [w for w in config.warnings if w.startswith(f"{variable}: ")]
    assert len(warnings) == 1
    assert "no longer used" in warnings[0]
    assert value not in str(config.warnings) + str(config.redacted()) + repr(config)
    assert not hasattr(config, variable.lower())


def test_retired_variables_left_empty_raise_no_warning() -> None:
    config = load(CACHE_TTL="", SECRET_KEY="")
    assert not any(w.startswith(("CACHE_TTL", "SECRET_KEY")) for w in config.warnings)


def test_default_registry_url_is_the_registry_port_not_the_agents_own() -> None:
    config = load()
    assert config.mesh_registry_url == f"http://localhost:{REGISTRY_PORT}"
    assert config.port == AGENT_PORT != REGISTRY_PORT
    assert not any(w.startswith("MESH_REGISTRY_URL") for w in config.warnings)


def test_bad_values_elsewhere_still_leave_the_valid_ones_for_the_ops_commands() -> None:
    checked = check_agent_env(
        {"MCP_MESH_TOKEN": TOKEN, "LOG_LEVEL": "loud", "MCP_MESH_STATE_DIR": "/srv/state"}
    )
    assert checked.config is None
    assert checked.best_effort.state_dir == Path("/srv/state")
    assert checked.best_effort.log_level == "INFO"
