"""Which directories a backup covers, where backups go and the identity that encrypts them,
from the agent's env file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mcp_mesh_sdk.constants import AGENT_ENV, BACKUP_DIR, BACKUP_IDENTITY_NAME, CONFIG_DIR
from mcp_mesh_sdk.envfile import read_env_file
from mcp_mesh_sdk.opspaths import agent_paths

BACKUP_DIR_VARIABLE = "MCP_MESH_BACKUP_DIR"


def is_within(path: Path, parent: Path) -> bool:
    """True when `path` is `parent` or below it (purely lexical; both absolute)."""
    return path == parent or parent in path.parents


@dataclass(frozen=True)
class Sources:
    config_dir: Path
    env_file: Path | None
    state_dir: Path
    data_dir: Path | None
    backup_dir: Path
    identity_file: Path  # the age identity (`encryption.py`); never archived

    def roots(self) -> dict[str, Path]:
        """Archive root name -> the path it stands for; the env file only when outside config."""
        roots: dict[str, Path] = {"config": self.config_dir}
        if self.env_file is not None and not is_within(self.env_file, self.config_dir):
            roots["env"] = self.env_file
        roots["state"] = self.state_dir
        if self.data_dir is not None:
            roots["data"] = self.data_dir
        return roots


def _absolute(path: str | Path | None) -> Path | None:
    return None if path is None else Path(os.path.normpath(Path(path).absolute()))


def resolve_sources(
    env_file: str | Path | None = None,
    config_dir: str | Path | None = None,
    state_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    output_dir: str | Path | None = None,
    identity_file: str | Path | None = None,
) -> Sources:
    """Paths from the agent env file (default `constants.AGENT_ENV`), then the overrides.

    The identity is `backup.key` in the config directory unless `identity_file` is given."""
    paths = agent_paths(env_file)
    env = read_env_file(paths.env_file) if paths.env_file else {}
    backup_dir = output_dir or env.get(BACKUP_DIR_VARIABLE) or os.environ.get(BACKUP_DIR_VARIABLE)
    read_file = _absolute(paths.env_file)
    default_config = read_file.parent if env_file is not None and read_file else None
    config = _absolute(config_dir) or default_config or CONFIG_DIR
    return Sources(
        config_dir=config,
        env_file=read_file or (AGENT_ENV if env_file is None else None),
        state_dir=_absolute(state_dir) or paths.state_dir,
        data_dir=_absolute(data_dir) or paths.base_directory,
        backup_dir=_absolute(backup_dir) or BACKUP_DIR,
        identity_file=_absolute(identity_file) or config / BACKUP_IDENTITY_NAME,
    )
