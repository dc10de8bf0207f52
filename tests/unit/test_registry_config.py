import pytest

from mcp_mesh_sdk.errors import ConfigError
from mcp_mesh_sdk.registry.config import load_registry_config


def test_defaults_follow_the_contract() -> None:
    config = load_registry_config({"MCP_MESH_REGISTRY_TOKEN": "s3cret-long-enough-token"})
    assert (config.host, config.port) == ("0.0.0.0", 8000)
    assert str(config.db_path) == "/var/lib/mcp-mesh/registry.db"
    assert config.stale_after == 90  # 3 missed 30 s intervals
    assert config.retention == 3600
    assert "s3cret" not in repr(config)
    assert "s3cret" not in str(config.redacted())


def test_token_can_come_from_a_file(tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    config = load_registry_config({"MCP_MESH_REGISTRY_TOKEN_FILE": str(token_file)})
    assert config.token.reveal() == "from-file"


def test_every_bad_variable_is_named() -> None:
    env = {
        "MCP_MESH_REGISTRY_PORT": "eighty",
        "HEALTH_INTERVAL": "-1",
        "MCP_MESH_REGISTRY_STALE_INTERVALS": "0",
        "LOG_LEVEL": "LOUD",
        "MCP_MESH_REGISTRY_DB": "relative.db",
        "MCP_MESH_REGISTRY_MAX_CONNECTIONS": "0",
        "MCP_MESH_REGISTRY_HEADER_TIMEOUT": "never",
        "MCP_MESH_REGISTRY_KEEP_ALIVE_TIMEOUT": "-1",
    }
    with pytest.raises(ConfigError) as caught:
        load_registry_config(env)
    message = str(caught.value)
    for variable in (*env, "MCP_MESH_REGISTRY_TOKEN"):
        assert variable in message


def test_unreadable_token_file_is_named(tmp_path) -> None:
    with pytest.raises(ConfigError, match="MCP_MESH_REGISTRY_TOKEN_FILE"):
        load_registry_config({"MCP_MESH_REGISTRY_TOKEN_FILE": str(tmp_path / "absent")})


def test_misspelt_registry_variable_is_a_warning() -> None:
    config = load_registry_config(
        {"MCP_MESH_REGISTRY_TOKEN": "a-long-enough-token-value", "MCP_MESH_REGISTRY_PROT": "1"}
    )
    assert any("MCP_MESH_REGISTRY_PROT" in warning for warning in config.warnings)
