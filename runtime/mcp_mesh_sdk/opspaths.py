"""Where the agent keeps things on this host, as the ops commands need them.

Read from the agent's env file (default `constants.AGENT_ENV`, skipped when absent) with the
agent's own parser. A file with unrelated bad variables still yields its paths, read by the
same rules, so an operator can back up or diagnose a host whose configuration is broken.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mcp_mesh_sdk.config import AgentConfig, check_agent_env
from mcp_mesh_sdk.constants import AGENT_ENV
from mcp_mesh_sdk.envfile import read_env_file
from mcp_mesh_sdk.envreader import Secret
from mcp_mesh_sdk.errors import ConfigError
from mcp_mesh_sdk.serving.tls import TlsSettings

# The variables the paths come from: a problem with one of these is a problem for every caller.
PATH_VARIABLES = frozenset({"MCP_MESH_STATE_DIR", "BASE_DIRECTORY", "MCP_MESH_PORT"})


@dataclass(frozen=True)
class AgentPaths:
    env_file: Path | None  # the file read; None when the default one does not exist
    state_dir: Path
    base_directory: Path | None
    port: int
    config_valid: bool
    tls: TlsSettings = field(default_factory=TlsSettings)  # MCP_MESH_TLS_*


def agent_paths(env_file: str | Path | None = None) -> AgentPaths:
    """The agent's paths from `env_file`; a missing explicit file is a ConfigError."""
    path = Path(env_file) if env_file is not None else AGENT_ENV
    if env_file is None and not path.exists():
        default = AgentConfig(token=Secret(""))
        return AgentPaths(
            None, default.state_dir, default.base_directory, default.port, config_valid=False
        )
    checked = check_agent_env(read_env_file(path))
    path_problems = [problem for problem in checked.problems if problem.variable in PATH_VARIABLES]
    if path_problems:
        raise ConfigError(path_problems)
    config = checked.best_effort
    return AgentPaths(
        path,
        config.state_dir,
        config.base_directory,
        config.port,
        config_valid=checked.config is not None,
        tls=config.tls,
    )
