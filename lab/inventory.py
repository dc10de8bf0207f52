"""The Ansible inventory `up` writes; testinfra reads the same file.

Every host carries its connection settings itself (not only through group vars), so any tool
that reads host variables finds them, and `lab_address` names the address explicitly for
roles and tests that should not depend on `ansible_host`. `lab_distro` names the Debian
release the host boots (`bookworm`, `trixie`), for tests that parametrize on it.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pyrage
import yaml

from lab.tls import LabCa
from lab.topology import MONITORING, Topology

PYTHON = "/usr/bin/python3"


def control_path(key: Path) -> str:
    """Where SSH keeps shared connections to the lab's hosts: beside the key, gone with the lab.

    Ansible and testinfra both honour it, so a test suite's hundreds of commands reuse a few
    connections instead of a handshake each. `%C` is ssh's hash of host, port and user.
    """
    return str(key.parent / "ssh-%C")


# Lab-only credentials the roles need; made fresh for each lab, kept in the git-ignored inventory.
LAB_SECRET_VARIABLES = ("mesh_agent_token", "mesh_registry_token", "mesh_common_database_password")
LAB_BACKUP_IDENTITY = "mesh_agent_backup_identity"  # the age identity backups are encrypted to


def lab_secrets() -> dict[str, str]:
    """Random tokens and a new age identity for one lab's lifetime: nothing the lab deploys
    uses a committed secret."""
    tokens = {name: secrets.token_urlsafe(32) for name in LAB_SECRET_VARIABLES}
    return {**tokens, LAB_BACKUP_IDENTITY: str(pyrage.x25519.Identity.generate())}


# The lab's clients (mesh_agent_clients), each with a token of its own. The named ones are for
# tests that follow one client (audit log, revocation, read-your-writes); the load clients are
# the fleet's load generator, which spreads its calls over them: the LB hashes on the
# Authorization header, so load from one token would all land on one agent (and a rollout's
# canary would get none of it).
LAB_CLIENTS_VARIABLE = "mesh_agent_clients"
NAMED_CLIENTS = ("alice", "bob", "carol", "dave")
LOAD_CLIENTS = tuple(f"load-{number:02d}" for number in range(1, 49))


def lab_clients() -> list[dict[str, str]]:
    """Every lab client with a fresh random token, as mesh_agent_clients lists them."""
    return [
        {"name": name, "token": secrets.token_urlsafe(32)}
        for name in (*NAMED_CLIENTS, *LOAD_CLIENTS)
    ]


# all.vars and each host's vars of the lab's TLS settings (mesh_common_tls_*)
TlsVariables = tuple[dict[str, Any], dict[str, dict[str, str]]]


def tls_variables(topology: Topology, ca: LabCa) -> TlsVariables:
    """The lab's TLS settings: (all.vars, per-host vars), a certificate per host from `ca`."""
    per_host = {}
    for host in topology.hosts:
        issued = ca.issue(host.name, host.address)
        per_host[host.name] = {
            "mesh_common_tls_cert": issued.cert,
            "mesh_common_tls_key": issued.key,
        }
    return {"mesh_common_tls_enabled": True, "mesh_common_tls_ca_cert": ca.cert}, per_host


# With a monitoring group (`lab up --monitoring`), Alertmanager posts to a receiver the lab tests
# run on the controller's bridge address, and the rules fire within seconds rather than minutes.
ALERT_RECEIVER_PORT = 9099
ALERT_RECEIVER_PATH = "/alerts"


def monitoring_variables(topology: Topology) -> dict[str, Any]:
    """all.vars for mesh_monitoring on a lab with a monitoring group; {} without one."""
    if not topology.groups().get(MONITORING):
        return {}
    return {
        "mesh_monitoring_webhook_url": (
            f"http://{topology.controller}:{ALERT_RECEIVER_PORT}{ALERT_RECEIVER_PATH}"
        ),
        "mesh_monitoring_scrape_interval": "5s",
        "mesh_monitoring_evaluation_interval": "5s",
        "mesh_monitoring_alert_down_for": "20s",
        "mesh_monitoring_alert_error_rate_for": "20s",
        "mesh_monitoring_group_wait": "5s",
        "mesh_monitoring_group_interval": "10s",
    }


def inventory_data(
    topology: Topology,
    key: Path,
    credentials: dict[str, Any] | None = None,
    tls: TlsVariables | None = None,
) -> dict[str, Any]:
    """The inventory's content; `credentials` join all.vars, `tls` is what tls_variables gives."""
    tls_vars, tls_hosts = tls or ({}, {})
    hosts = {
        host.name: {
            "ansible_host": str(host.address),
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(key),
            "ansible_ssh_common_args": f"-o ControlPath={control_path(key)}",
            "ansible_python_interpreter": PYTHON,
            "lab_address": str(host.address),
            "lab_distro": host.distro,
            **tls_hosts.get(host.name, {}),
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
                **tls_vars,
                **monitoring_variables(topology),
            },
        }
    }


class _InventoryDumper(yaml.SafeDumper):
    """Multi-line strings (certificates, keys) as literal blocks, readable as PEM files are."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_InventoryDumper.add_representer(str, _represent_str)


def dump_yaml(data: dict[str, Any]) -> str:
    """YAML as the lab's inventory is written (keys in order, PEM texts as literal blocks)."""
    return yaml.dump(data, Dumper=_InventoryDumper, sort_keys=False, default_flow_style=False)


def render_inventory(
    topology: Topology,
    key: Path,
    credentials: dict[str, Any] | None = None,
    tls: TlsVariables | None = None,
) -> str:
    header = (
        f"# Lab '{topology.lab}', written by `python -m lab up`; removed by `python -m lab down`.\n"
    )
    body = dump_yaml(inventory_data(topology, key, credentials, tls))
    return "---\n" + header + body


def write_inventory(path: Path, topology: Topology, key: Path, ca: LabCa | None = None) -> None:
    """Write the inventory, readable by its owner only: it carries the lab's tokens, clients
    and host keys. `ca` signs the hosts' certificates (a new CA when not given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    credentials: dict[str, Any] = {**lab_secrets(), LAB_CLIENTS_VARIABLE: lab_clients()}
    tls = tls_variables(topology, ca or LabCa.create(topology.lab))
    temporary = path.with_suffix(".yml.tmp")
    temporary.touch(mode=0o600)
    temporary.chmod(0o600)
    temporary.write_text(render_inventory(topology, key, credentials, tls))
    temporary.replace(path)
