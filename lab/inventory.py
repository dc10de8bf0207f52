"""The Ansible inventory `up` writes; testinfra reads the same file.

Every host carries its connection settings itself (not only through group vars), so any tool
that reads host variables finds them, and `lab_address` names the address explicitly for
roles and tests that should not depend on `ansible_host`.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pyrage
import yaml

from lab.topology import Topology

PYTHON = "/usr/bin/python3"


def control_path(key: Path) -> str:
    """Where SSH keeps shared connections to the lab's hosts: beside the key, gone with the lab.

    Ansible and testinfra both honour it, so a test suite's hundreds of commands reuse a few
    connections instead of a handshake each. `%C` is ssh's hash of host, port and user.
    """
    return str(key.parent / "ssh-%C")


# Lab-only credentials the roles need; made fresh for each lab, kept in the git-ignored inventory.
LAB_SECRET_VARIABLES = ("mesh_agent_token", "mesh_registry_token")
LAB_BACKUP_IDENTITY = "mesh_agent_backup_identity"  # the age identity backups are encrypted to


def lab_secrets() -> dict[str, str]:
    """Random tokens and a new age identity for one lab's lifetime: nothing the lab deploys
    uses a committed secret."""
    tokens = {name: secrets.token_urlsafe(32) for name in LAB_SECRET_VARIABLES}
    return {**tokens, LAB_BACKUP_IDENTITY: str(pyrage.x25519.Identity.generate())}


def inventory_data(
    topology: Topology, key: Path, credentials: dict[str, str] | None = None
) -> dict[str, Any]:
    hosts = {
        host.name: {
            "ansible_host": str(host.address),
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(key),
            "ansible_ssh_common_args": f"-o ControlPath={control_path(key)}",
            "ansible_python_interpreter": PYTHON,
            "lab_address": str(host.address),
        }
        for host in topology.hosts
    }
    children: dict[str, Any] = {
        group: {"hosts": {name: {} for name in members}}
        for group, members in topology.groups().items()
    }
    return {
        "all": {
            "hosts": hosts,
            "children": children,
            "vars": {
                "lab_name": topology.lab,
                "lab_subnet": str(topology.subnet),
                "lab_controller_address": str(topology.controller),
                **(credentials or {}),
            },
        }
    }


def render_inventory(
    topology: Topology, key: Path, credentials: dict[str, str] | None = None
) -> str:
    header = (
        f"# Lab '{topology.lab}', written by `python -m lab up`; removed by `python -m lab down`.\n"
    )
    body = yaml.safe_dump(
        inventory_data(topology, key, credentials), sort_keys=False, default_flow_style=False
    )
    return "---\n" + header + body


def write_inventory(path: Path, topology: Topology, key: Path) -> None:
    """Write the inventory, readable by its owner only: it carries the lab's tokens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".yml.tmp")
    temporary.touch(mode=0o600)
    temporary.chmod(0o600)
    temporary.write_text(render_inventory(topology, key, lab_secrets()))
    temporary.replace(path)
