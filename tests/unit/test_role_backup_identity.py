"""mesh_common's backup identity, written by Ansible on this machine as the roles write it: the
identity age-keygen made, byte for byte, root-only, and never in the output, even with --diff."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pyrage
import pytest

from mcp_mesh_sdk.backup.encryption import load_key
from tests.roleplay import run_in_service_role

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="the role writes root-owned files (run as root, like the lab)"
)


def write_identity(tmp_path: Path, identity: str, *args: str) -> str:
    """Run mesh_common's backup_identity.yml on localhost into tmp_path/etc; its output."""
    (tmp_path / "etc").mkdir(exist_ok=True)
    entry = {"name": "mesh_common", "tasks_from": "backup_identity.yml"}
    variables = {
        "mesh_common_config_dir": str(tmp_path / "etc"),
        "mesh_common_backup_identity": identity,
    }
    out = run_in_service_role(tmp_path, [{"ansible.builtin.import_role": entry}], variables, *args)
    assert out.startswith("rc=0"), out
    return out


def test_the_identity_is_written_as_age_keygen_wrote_it_and_never_shown(tmp_path: Path) -> None:
    identity = str(pyrage.x25519.Identity.generate())
    out = write_identity(tmp_path, identity + "\n", "--diff")
    key_file = tmp_path / "etc" / "backup.key"
    assert key_file.read_text() == identity + "\n"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_key(key_file) is not None  # the backup commands open it
    assert identity not in out and identity.lower() not in out.lower()
    assert "backup.key: new, (secret: its content is not shown)" in out
    assert "changed=0" in write_identity(tmp_path, identity)
