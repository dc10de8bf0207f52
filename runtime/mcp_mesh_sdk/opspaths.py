"""Where the agent keeps things on this host, as the ops commands need them.

Read from the agent's env file (default /etc/mcp-mesh/agent.env, skipped when absent) with the
agent's own parser. A file with unrelated bad variables still yields its paths, read by the
same rules, so an operator can back up or diagnose a host whose configuration is broken.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mcp_mesh_sdk.config import EnvReader, check_agent_env
from mcp_mesh_sdk.envfile import read_env_file

DEFAULT_AGENT_ENV = Path("/etc/mcp-mesh/agent.env")
DEFAULT_STATE_DIR = Path("/var/lib/mcp-mesh")
DEFAULT_PORT = 8080


@dataclass(frozen=True)
class AgentPaths:
    env_file: Path | None  # the file read; None when the default one does not exist
    state_dir: Path
    base_directory: Path | None
    port: int
    config_valid: bool


def agent_paths(env_file: str | Path | None = None) -> AgentPaths:
    """The agent's paths from `env_file`; a missing explicit file is a ConfigError."""
    path = Path(env_file) if env_file is not None else DEFAULT_AGENT_ENV
    if env_file is None and not path.exists():
        return AgentPaths(None, DEFAULT_STATE_DIR, None, DEFAULT_PORT, config_valid=False)
    env = read_env_file(path)
    checked = check_agent_env(env)
    if checked.config is not None:
        config = checked.config
        return AgentPaths(path, config.state_dir, config.base_directory, config.port, True)
    read = EnvReader(env)
    state_dir = read.absolute_path("MCP_MESH_STATE_DIR", DEFAULT_STATE_DIR) or DEFAULT_STATE_DIR
    base_directory = read.absolute_path("BASE_DIRECTORY", None)
    port = read.integer("MCP_MESH_PORT", DEFAULT_PORT, minimum=1, maximum=65535)
    read.finish()
    return AgentPaths(path, state_dir, base_directory, port, config_valid=False)
