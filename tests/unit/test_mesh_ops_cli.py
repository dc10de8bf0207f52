"""mesh-ops on the controller: the inventory it reads, the status table, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mesh_ops.cli import main, status_row, table, uptime
from mesh_ops.inventory import InventoryError, load_inventory

INVENTORY = """
all:
  hosts:
    agent1: {ansible_host: 10.0.0.11, ansible_ssh_private_key_file: /k}
  children:
    agents:
      hosts:
        agent1: {}
        agent2: {ansible_host: 10.0.0.12, mesh_agent_port: 9090}
      vars: {ansible_user: deploy}
    loadbalancer:
      hosts:
        lb1: {ansible_host: 10.0.0.10}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hosts.yml"
    path.write_text(text)
    return path


def test_inventory_hosts_groups_and_inherited_vars(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, INVENTORY))
    assert [h.name for h in inventory.group("agents")] == ["agent1", "agent2"]
    agent1, agent2 = inventory.host("agent1"), inventory.host("agent2")
    assert (agent1.address, agent1.key_file, agent1.user) == ("10.0.0.11", "/k", "deploy")
    assert (agent2.agent_port, agent2.user) == (9090, "deploy")
    assert inventory.host("lb1").user == "root"
    with pytest.raises(InventoryError, match="no group 'registry'"):
        inventory.group("registry")
    with pytest.raises(InventoryError, match="no host 'agent9'"):
        inventory.host("agent9")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- not: an inventory", "no 'all:' group"),
        ("all: [", "not valid YAML"),
        ("all: {}", "no hosts"),
    ],
)
def test_bad_inventory_is_refused_with_a_message(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InventoryError, match=message):
        load_inventory(write(tmp_path, text))


def test_status_row_from_a_probe() -> None:
    probe: dict[str, Any] = {
        "active": True,
        "health": [200, {"version": "1.2.3", "uptime_seconds": 3720}],
        "ready": 200,
        "detailed": [200, {"checks": {"registry": {"registered": True}}}],
        "incidents": [{"id": "INC-1"}],
    }
    assert status_row("agent1", probe) == ["agent1", "1.2.3", "yes", "yes", "yes", "1h02m", "1"]
    stopped = {"active": False, "health": [None, "connection refused"], "ready": None,
               "detailed": [None, "connection refused"], "incidents": None}  # fmt: skip
    assert status_row("agent2", stopped) == ["agent2", "-", "no", "no", "no", "-", "?"]


def test_table_and_uptime() -> None:
    assert table(["A", "BB"], [["xyz", "1"]]) == "A    BB\nxyz  1"
    assert uptime(2 * 86400 + 3600) == "2d01h"
    assert uptime(None) == "-"


def test_missing_inventory_and_unknown_host_exit_1_with_a_message(
    tmp_path: Path, capsys: Any
) -> None:
    assert main(["-i", str(tmp_path / "none.yml"), "status"]) == 1
    assert "cannot read inventory" in capsys.readouterr().err
    assert main(["-i", str(write(tmp_path, INVENTORY)), "logs", "agent9"]) == 1
    assert "no host 'agent9'" in capsys.readouterr().err
