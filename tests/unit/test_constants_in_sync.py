"""The names and default paths are defined once per side, and both sides agree."""

from __future__ import annotations

from pathlib import Path

import yaml

from mcp_mesh_sdk import constants

ROLE = Path(__file__).resolve().parents[2] / "roles" / "mesh_common"


def role_values() -> dict[str, str]:
    values: dict[str, str] = {}
    for name in ("defaults", "vars"):
        values.update(yaml.safe_load((ROLE / name / "main.yml").read_text()))
    return values


def test_unit_names_match_the_roles() -> None:
    role = role_values()
    assert role["mesh_common_agent_unit"] == constants.AGENT_UNIT
    assert role["mesh_common_registry_unit"] == constants.REGISTRY_UNIT
    assert role["mesh_common_backup_unit"] == constants.BACKUP_UNIT
    assert role["mesh_common_backup_timer"] == constants.BACKUP_TIMER
    assert role["mesh_common_backup_identity_name"] == constants.BACKUP_IDENTITY_NAME


def test_default_paths_match_the_roles() -> None:
    role = role_values()
    assert Path(role["mesh_common_install_dir"]) == constants.INSTALL_DIR
    assert Path(role["mesh_common_config_dir"]) == constants.CONFIG_DIR
    assert Path(role["mesh_common_state_dir"]) == constants.STATE_DIR
    assert Path(role["mesh_common_backup_dir"]) == constants.BACKUP_DIR
    cli = role["mesh_common_cli"].replace(
        "{{ mesh_common_install_dir }}", str(constants.INSTALL_DIR)
    )
    assert Path(cli) == constants.CLI
