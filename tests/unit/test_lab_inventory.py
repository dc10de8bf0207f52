"""The inventory `lab up` writes, as Ansible and testinfra read it."""

import json
import subprocess
import sys
from ipaddress import IPv4Network
from pathlib import Path

import yaml

from lab.inventory import render_inventory, write_inventory
from lab.state import inventory_path
from lab.topology import build_topology

KEY = Path("/var/lib/mcp-mesh-lab/mesh/id_ed25519")


def topology():
    return build_topology("mesh", 2, IPv4Network("10.231.7.0/24"))


def test_every_host_carries_its_connection_settings() -> None:
    data = yaml.safe_load(render_inventory(topology(), KEY))
    lb1 = data["all"]["hosts"]["lb1"]
    assert lb1 == {
        "ansible_host": "10.231.7.10",
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(KEY),
        "ansible_ssh_common_args": "-o ControlPath=/var/lib/mcp-mesh-lab/mesh/ssh-%C",
        "ansible_python_interpreter": "/usr/bin/python3",
        "lab_address": "10.231.7.10",
    }
    assert data["all"]["vars"]["lab_controller_address"] == "10.231.7.1"


def test_groups_list_their_members() -> None:
    children = yaml.safe_load(render_inventory(topology(), KEY))["all"]["children"]
    assert set(children) == {"loadbalancer", "registry", "agents"}
    assert list(children["registry"]["hosts"]) == ["lb1"]
    assert list(children["agents"]["hosts"]) == ["agent1", "agent2"]


def test_ansible_inventory_resolves_groups_and_host_vars(tmp_path) -> None:
    path = tmp_path / "hosts.yml"
    write_inventory(path, topology(), KEY)
    tool = Path(sys.executable).parent / "ansible-inventory"
    listed = json.loads(
        subprocess.run(
            [str(tool), "-i", str(path), "--list"], capture_output=True, text=True, check=True
        ).stdout
    )
    assert listed["loadbalancer"]["hosts"] == ["lb1"]
    assert sorted(listed["agents"]["hosts"]) == ["agent1", "agent2"]
    assert listed["_meta"]["hostvars"]["agent2"]["ansible_host"] == "10.231.7.12"


def test_default_lab_writes_hosts_yml_and_others_their_own_file() -> None:
    assert inventory_path("mesh").name == "hosts.yml"
    assert inventory_path("ci2").name == "ci2.yml"
    assert inventory_path("ci2").parent == inventory_path("mesh").parent


def test_written_inventory_carries_fresh_lab_tokens_readable_by_root_only(tmp_path) -> None:
    first, second = tmp_path / "a.yml", tmp_path / "b.yml"
    write_inventory(first, topology(), KEY)
    write_inventory(second, topology(), KEY)
    tokens = [yaml.safe_load(path.read_text())["all"]["vars"] for path in (first, second)]
    for lab_vars in tokens:
        assert len(lab_vars["mesh_agent_token"]) >= 32
        assert lab_vars["mesh_agent_token"] != lab_vars["mesh_registry_token"]
    assert tokens[0]["mesh_agent_token"] != tokens[1]["mesh_agent_token"]
    assert first.stat().st_mode & 0o777 == 0o600


def test_each_lab_gets_its_own_backup_identity_readable_by_its_owner_only(tmp_path) -> None:
    from mcp_mesh_sdk.backup.encryption import load_key

    identities = []
    for name in ("one", "two"):
        path = tmp_path / f"{name}.yml"
        write_inventory(path, topology(), KEY)
        assert path.stat().st_mode & 0o077 == 0
        identity = yaml.safe_load(path.read_text())["all"]["vars"]["mesh_agent_backup_identity"]
        key_file = tmp_path / f"{name}.key"
        key_file.touch(mode=0o600)
        key_file.write_text(identity + "\n")
        load_key(key_file)  # what the hosts' backup commands will read
        identities.append(identity)
    assert identities[0] != identities[1]
