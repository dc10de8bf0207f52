"""mesh_common's backup identity, written by Ansible on this machine as the roles write it: the
identity age-keygen made, byte for byte, root-only, and never in the output, even with --diff."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pyrage
import pytest

from mcp_mesh_sdk.backup.encryption import load_key

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="the role writes root-owned files (run as root, like the lab)"
)


def write_identity(tmp_path: Path, identity: str, *args: str) -> str:
    """Run mesh_common's backup_identity.yml on localhost into tmp_path/etc; its output."""
    role = tmp_path / "roles" / "svc" / "tasks"  # a service role, as mesh_common's pieces expect
    role.mkdir(parents=True, exist_ok=True)
    entry = {"name": "mesh_common", "tasks_from": "backup_identity.yml"}
    (role / "main.yml").write_text(json.dumps([{"ansible.builtin.import_role": entry}]))
    play = tmp_path / "play.yml"
    play.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "roles": ["svc"]}]))
    (tmp_path / "etc").mkdir(exist_ok=True)
    extra = {
        "mesh_common_config_dir": str(tmp_path / "etc"),
        "mesh_common_backup_identity": identity,
        "ansible_python_interpreter": sys.executable,
    }
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i", "localhost,", "-c", "local", str(play), "-e", f"@{tmp_path / 'extra.json'}",
            *args,
        ],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_ROLES_PATH": f"{tmp_path / 'roles'}:{REPO / 'roles'}",
        },
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


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
