"""Hosts and groups of an Ansible YAML inventory, with what SSH needs to reach each host."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# The lab's inventory in this checkout, wherever mesh-ops is run from.
DEFAULT_INVENTORY = Path(__file__).resolve().parents[1] / "inventories" / "lab" / "hosts.yml"


class InventoryError(Exception):
    """The inventory cannot be read or has no such host or group."""


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    user: str = "root"
    port: int = 22
    key_file: str | None = None
    agent_port: int = 8080
    groups: frozenset[str] = field(default_factory=frozenset)


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


def _walk(
    group: str,
    body: Any,
    inherited: dict[str, Any],
    seen: dict[str, tuple[dict[str, Any], set[str]]],
) -> None:
    body = body or {}
    if not isinstance(body, dict):
        raise InventoryError(f"group {group!r} is not a mapping")
    variables = {**inherited, **(body.get("vars") or {})}
    for name, host_vars in (body.get("hosts") or {}).items():
        merged, groups = seen.setdefault(str(name), ({}, set()))
        for key, value in variables.items():
            merged.setdefault(key, value)
        merged.update(host_vars or {})
        groups.add(group)
    for child, child_body in (body.get("children") or {}).items():
        _walk(str(child), child_body, variables, seen)


def load_inventory(path: Path) -> Inventory:
    """Read a YAML inventory (`all:` with hosts, children, vars; group vars inherited)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InventoryError(f"cannot read inventory {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise InventoryError(f"inventory {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("all"), dict):
        raise InventoryError(f"inventory {path} has no 'all:' group (a YAML inventory is needed)")
    seen: dict[str, tuple[dict[str, Any], set[str]]] = {}
    _walk("all", data["all"], {}, seen)
    hosts = {}
    for name, (values, groups) in seen.items():
        try:
            hosts[name] = Host(
                name=name,
                address=str(values.get("ansible_host", name)),
                user=str(values.get("ansible_user", "root")),
                port=int(values.get("ansible_port", 22)),
                key_file=values.get("ansible_ssh_private_key_file"),
                agent_port=int(values.get("mesh_agent_port", 8080)),
                groups=frozenset(groups - {"all"}),
            )
        except (TypeError, ValueError) as exc:
            raise InventoryError(f"host {name!r} in {path}: bad port ({exc})") from exc
    if not hosts:
        raise InventoryError(f"inventory {path} lists no hosts")
    return Inventory(hosts)
