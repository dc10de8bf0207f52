"""Hosts and groups of an Ansible inventory, as `ansible-inventory --list` resolves them.

Ansible reads the inventory (a file or a directory with group_vars/ and host_vars/, any
plugin, vault-encrypted variables), so mesh-ops connects as the playbooks do: same address,
port, user, key and become.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.constants import AGENT_PORT

# The repository this package belongs to: playbooks/, inventories/ and ansible.cfg.
REPO = Path(__file__).resolve().parents[2]
# The lab's inventory in this checkout, wherever mesh-ops is run from.
DEFAULT_INVENTORY = REPO / "inventories" / "lab" / "hosts.yml"
STDERR_LINES = 12


class InventoryError(Exception):
    """The inventory cannot be read or has no such host or group."""


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    user: str | None = None  # None: as SSH decides (~/.ssh/config, else the local user)
    port: int = 22
    key_file: str | None = None
    agent_port: int = AGENT_PORT
    groups: frozenset[str] = field(default_factory=frozenset)
    become: bool = False
    become_user: str = "root"
    become_password: str | None = field(default=None, repr=False)
    variables: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class Inventory:
    hosts: dict[str, Host]

    def group(self, name: str) -> list[Host]:
        if name == "all":
            return list(self.hosts.values())
        members = [host for host in self.hosts.values() if name in host.groups]
        if not members:
            known = sorted({g for host in self.hosts.values() for g in host.groups})
            raise InventoryError(f"no group {name!r} in the inventory (groups: {known})")
        return members

    def host(self, name: str) -> Host:
        if name not in self.hosts:
            raise InventoryError(f"no host {name!r} in the inventory (hosts: {sorted(self.hosts)})")
        return self.hosts[name]


def ansible_command(name: str) -> str:
    """An Ansible command of the running Python's venv, else the one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name) or name


def ansible_environment() -> dict[str, str]:
    """The environment Ansible commands run in: this repository's ansible.cfg unless one is
    chosen, plain text, and an inventory Ansible cannot parse is an error, not a warning."""
    return {
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        **os.environ,
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true",
        "ANSIBLE_NOCOLOR": "1",
    }


def _why(stderr: str) -> str:
    """Ansible's headline messages ([ERROR]/[WARNING] lines), else the end of its stderr."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    headlines = [line for line in lines if line.startswith(("[ERROR]", "[WARNING]", "ERROR!"))]
    return "\n  ".join((headlines or lines)[-STDERR_LINES:]) or "no message"


def list_inventory(path: Path, vault_password_file: Path | None = None) -> dict[str, Any]:
    """`ansible-inventory -i PATH --list` as JSON; InventoryError with Ansible's reason."""
    if not path.exists():
        raise InventoryError(f"cannot read inventory {path}: no such file or directory")
    argv = [ansible_command("ansible-inventory"), "-i", str(path.resolve()), "--list"]
    if vault_password_file is not None:
        argv += ["--vault-password-file", str(vault_password_file.resolve())]
    try:
        done = subprocess.run(
            argv, cwd=REPO, env=ansible_environment(), capture_output=True, text=True,
            stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    except OSError as exc:
        raise InventoryError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    if done.returncode != 0:
        hint = ""
        if "vault" in done.stderr.lower() and vault_password_file is None:
            hint = "\n  (give --vault-password-file FILE or set ANSIBLE_VAULT_PASSWORD_FILE)"
        raise InventoryError(
            f"ansible-inventory cannot read {path} (exit {done.returncode}):\n"
            f"  {_why(done.stderr)}{hint}"
        )
    try:
        listed = json.loads(done.stdout)
    except ValueError as exc:
        raise InventoryError(f"ansible-inventory printed no JSON for {path}: {exc}") from exc
    if not isinstance(listed, dict):
        raise InventoryError(f"ansible-inventory printed no inventory for {path}")
    return listed


def group_members(listed: dict[str, Any]) -> dict[str, list[str]]:
    """Every group's hosts in inventory order, its children's hosts counted in it (as Ansible
    does)."""

    def hosts_of(group: str, seen: frozenset[str]) -> list[str]:
        body = listed.get(group) or {}
        members = list(body.get("hosts") or [])
        for child in body.get("children") or []:
            if child not in seen:
                members += hosts_of(child, seen | {child})
        return list(dict.fromkeys(members))

    return {group: hosts_of(group, frozenset({group})) for group in listed if group != "_meta"}


def _plain(host: str, variable: str, value: Any) -> Any:
    """A variable's value as Ansible would use it; InventoryError when only a play could
    resolve it (a Jinja template, an inline vault)."""
    if isinstance(value, dict) and set(value) == {"__ansible_unsafe"}:
        return value["__ansible_unsafe"]  # `!unsafe`: a plain value Ansible never templates
    if isinstance(value, dict) and "__ansible_vault" in value:
        reason = "is an inline vault"
    elif isinstance(value, str) and "{{" in value:
        reason = "is a template"
    else:
        return value
    raise InventoryError(f"host {host!r}: {variable} {reason}; mesh-ops needs a plain value")


def host_from_vars(name: str, variables: dict[str, Any], groups: set[str]) -> Host:
    def get(variable: str, default: Any = None) -> Any:
        return _plain(name, variable, variables.get(variable, default))

    become = bool(get("ansible_become", False))
    method = get("ansible_become_method", "sudo")
    if become and method != "sudo":
        raise InventoryError(f"host {name!r}: become method {method!r} (mesh-ops uses sudo only)")
    password = variables.get("ansible_become_password", variables.get("ansible_become_pass"))
    try:
        return Host(
            name=name,
            address=str(get("ansible_host", name)),
            user=None if get("ansible_user") is None else str(get("ansible_user")),
            port=int(get("ansible_port", 22)),
            key_file=get("ansible_ssh_private_key_file"),
            agent_port=int(get("mesh_agent_port", AGENT_PORT)),
            groups=frozenset(groups - {"all", "ungrouped"}),
            become=become,
            become_user=str(get("ansible_become_user", "root")),
            become_password=None
            if password is None or not become
            else str(_plain(name, "ansible_become_password", password)),
            variables=variables,
        )
    except (TypeError, ValueError) as exc:
        raise InventoryError(f"host {name!r}: bad port ({exc})") from exc


def load_inventory(path: Path, vault_password_file: Path | None = None) -> Inventory:
    """The hosts of an inventory file or directory, with their variables resolved by Ansible."""
    listed = list_inventory(path, vault_password_file)
    hostvars = (listed.get("_meta") or {}).get("hostvars") or {}
    members = group_members(listed)
    groups_of: dict[str, set[str]] = {}
    for group, names in members.items():
        for name in names:
            groups_of.setdefault(name, set()).add(group)
    order = list(dict.fromkeys([*members.get("all", []), *groups_of, *hostvars]))
    hosts = {
        name: host_from_vars(name, hostvars.get(name) or {}, groups_of.get(name, set()))
        for name in order
    }
    if not hosts:
        raise InventoryError(f"inventory {path} lists no hosts")
    return Inventory(hosts)
