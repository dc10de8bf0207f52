"""The names and default paths a host of the mesh uses, defined once for the Python side.

The Ansible side defines them once too: the paths as `mesh_common_*_dir` defaults (an inventory
may move them; the commands then take them from the env file or an option) and the unit names
in `roles/mesh_common/vars/main.yml`. A unit test keeps both sides equal.
"""

from __future__ import annotations

from pathlib import Path

INSTALL_DIR = Path("/opt/mcp-mesh")  # releases/<version>/ and the `current` symlink
CURRENT_RELEASE = INSTALL_DIR / "current"
CLI = CURRENT_RELEASE / "venv" / "bin" / "mcp-mesh-sdk"  # the current release's command
CONFIG_DIR = Path("/etc/mcp-mesh")
STATE_DIR = Path("/var/lib/mcp-mesh")
BACKUP_DIR = Path("/var/backups/mcp-mesh")
SYSTEMD_DIR = Path("/etc/systemd/system")

AGENT_UNIT = "mcp-mesh-sdk.service"
REGISTRY_UNIT = "mcp-mesh-registry.service"
BACKUP_UNIT = "mcp-mesh-backup.service"
BACKUP_TIMER = "mcp-mesh-backup.timer"
# The age identity backups are encrypted to, in the config directory (root, 0600).
BACKUP_IDENTITY_NAME = "backup.key"

AGENT_ENV = CONFIG_DIR / "agent.env"
REGISTRY_ENV = CONFIG_DIR / "registry.env"
REGISTRY_DB = STATE_DIR / "registry.db"

AGENT_PORT = 8080
REGISTRY_PORT = 8000
# The header an agent's registry calls carry its own key in (registry/store.py: the binding).
AGENT_KEY_HEADER = "X-Mesh-Agent-Key"

UNITS = {"agent": AGENT_UNIT, "registry": REGISTRY_UNIT}
ENV_FILES = {"agent": AGENT_ENV, "registry": REGISTRY_ENV}
