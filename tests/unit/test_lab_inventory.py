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
    assert {name: value for name, value in lb1.items() if not name.startswith("mesh_")} == {
        "ansible_host": "10.231.7.10",
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(KEY),
        "ansible_ssh_common_args": "-o ControlPath=/var/lib/mcp-mesh-lab/mesh/ssh-%C",
        "ansible_python_interpreter": "/usr/bin/python3",
        "lab_address": "10.231.7.10",
        "lab_distro": "bookworm",
    }
    assert data["all"]["vars"]["lab_controller_address"] == "10.231.7.1"


def test_groups_list_their_members() -> None:
    children = yaml.safe_load(render_inventory(topology(), KEY))["all"]["children"]
    assert set(children) == {"loadbalancer", "registry", "agents", "database", "monitoring"}
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


def test_the_lab_deploys_named_clients_and_a_pool_of_load_clients_each_with_its_own_token(
    tmp_path,
) -> None:
    path = tmp_path / "hosts.yml"
    write_inventory(path, topology(), KEY)
    lab_vars = yaml.safe_load(path.read_text())["all"]["vars"]
    clients = lab_vars["mesh_agent_clients"]
    names = [client["name"] for client in clients]
    assert names[:4] == ["alice", "bob", "carol", "dave"]
    assert names[4:] == [f"load-{number:02d}" for number in range(1, 49)]
    tokens = [client["token"] for client in clients]
    assert all(len(token) >= 32 for token in tokens)
    assert len(set(tokens) | {lab_vars["mesh_agent_token"]}) == len(tokens) + 1


def test_tls_is_on_with_the_lab_ca_and_a_certificate_and_key_per_host(tmp_path) -> None:
    from cryptography import x509

    from lab.tls import LabCa

    ca = LabCa.create("mesh")
    path = tmp_path / "hosts.yml"
    write_inventory(path, topology(), KEY, ca)
    data = yaml.safe_load(path.read_text())["all"]
    assert data["vars"]["mesh_common_tls_enabled"] is True
    assert data["vars"]["mesh_common_tls_ca_cert"] == ca.cert
    for name, host in data["hosts"].items():
        cert = x509.load_pem_x509_certificate(host["mesh_common_tls_cert"].encode())
        assert (
            cert.issuer.rfc4514_string()
            == x509.load_pem_x509_certificate(ca.cert.encode()).subject.rfc4514_string()
        )
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert name in names.get_values_for_type(x509.DNSName)
        assert "PRIVATE KEY" in host["mesh_common_tls_key"]
    keys = [host["mesh_common_tls_key"] for host in data["hosts"].values()]
    assert len(set(keys)) == len(keys)


def test_each_host_names_its_release_for_tests_to_parametrize_on(tmp_path) -> None:
    mixed = build_topology(
        "mesh", 2, IPv4Network("10.231.7.0/24"), agent_distros=("bookworm", "trixie")
    )
    path = tmp_path / "hosts.yml"
    write_inventory(path, mixed, KEY)
    tool = Path(sys.executable).parent / "ansible-inventory"
    listed = json.loads(
        subprocess.run(
            [str(tool), "-i", str(path), "--list"], capture_output=True, text=True, check=True
        ).stdout
    )
    hostvars = listed["_meta"]["hostvars"]
    assert {name: hostvars[name]["lab_distro"] for name in ("lb1", "agent1", "agent2")} == {
        "lb1": "bookworm",
        "agent1": "bookworm",
        "agent2": "trixie",
    }


def test_a_monitoring_lab_sends_alerts_to_the_controller_and_others_set_nothing() -> None:
    plain = yaml.safe_load(render_inventory(topology(), KEY))["all"]["vars"]
    assert not any(name.startswith("mesh_monitoring_") for name in plain)
    monitored = build_topology("mesh", 2, IPv4Network("10.231.7.0/24"), monitoring=True)
    variables = yaml.safe_load(render_inventory(monitored, KEY))["all"]["vars"]
    assert variables["mesh_monitoring_webhook_url"] == "http://10.231.7.1:9099/alerts"
    assert variables["mesh_monitoring_alert_down_for"] == "20s"
    assert variables["mesh_monitoring_alert_error_rate_for"] == "20s"
