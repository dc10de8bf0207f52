"""The agent's paths as the ops commands read them, even from a file that is broken elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_mesh_sdk import opspaths
from mcp_mesh_sdk.constants import AGENT_PORT, STATE_DIR
from mcp_mesh_sdk.errors import ConfigError
from mcp_mesh_sdk.opspaths import agent_paths

TOKEN = "agent-token-value-0123456789"


def write_env(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.env"
    path.write_text(text)
    return path


def test_without_the_default_file_the_agents_defaults_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(opspaths, "AGENT_ENV", tmp_path / "absent.env")
    paths = agent_paths()
    assert (paths.env_file, paths.state_dir, paths.base_directory, paths.port) == (
        None,
        STATE_DIR,
        None,
        AGENT_PORT,
    )
    assert not paths.config_valid


def test_a_valid_file_gives_its_paths(tmp_path: Path) -> None:
    env = write_env(
        tmp_path,
        f"MCP_MESH_TOKEN={TOKEN}\nMCP_MESH_STATE_DIR=/srv/state\nBASE_DIRECTORY=/srv/data\n"
        "MCP_MESH_PORT=9090\n",
    )
    paths = agent_paths(env)
    assert (paths.env_file, paths.state_dir, paths.base_directory, paths.port) == (
        env,
        Path("/srv/state"),
        Path("/srv/data"),
        9090,
    )
    assert paths.config_valid


def test_unrelated_bad_variables_still_give_the_paths(tmp_path: Path) -> None:
    env = write_env(tmp_path, "LOG_LEVEL=loud\nMCP_MESH_STATE_DIR=/srv/state\n")  # no token
    paths = agent_paths(env)
    assert paths.state_dir == Path("/srv/state")
    assert paths.port == AGENT_PORT
    assert not paths.config_valid


def test_a_bad_path_variable_is_named(tmp_path: Path) -> None:
    env = write_env(tmp_path, "LOG_LEVEL=loud\nMCP_MESH_STATE_DIR=relative\nMCP_MESH_PORT=x\n")
    with pytest.raises(ConfigError) as caught:
        agent_paths(env)
    assert {problem.variable for problem in caught.value.problems} == {
        "MCP_MESH_STATE_DIR",
        "MCP_MESH_PORT",
    }


def test_an_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        agent_paths(tmp_path / "absent.env")
