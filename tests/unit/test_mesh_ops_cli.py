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


def test_restart_runs_the_host_cycle_playbook_limited_to_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess

    from mesh_ops import cli

    calls: list[list[str]] = []

    def fake_run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(cli.subprocess, "run", fake_run)
    inventory = write(tmp_path, INVENTORY)
    monkeypatch.chdir(tmp_path)  # a relative -i still names the same file for ansible-playbook
    assert main(["-i", inventory.name, "restart", "agent2"]) == 0
    [argv] = calls
    assert argv[1:5] == ["-i", str(inventory), "--limit", "agent2"]
    assert argv[-1].endswith("playbooks/restart.yml")
    assert "agent2: restarted" in capsys.readouterr().out


def test_restart_of_a_host_that_is_no_agent_is_refused_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mesh_ops import cli

    monkeypatch.setattr(cli.subprocess, "run", lambda *a, **k: pytest.fail("ran a playbook"))
    assert main(["-i", str(write(tmp_path, INVENTORY)), "restart", "lb1"]) == 1
    assert "lb1 is not in group agents" in capsys.readouterr().err


def test_a_failed_restart_says_so_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess

    from mesh_ops import cli

    monkeypatch.setattr(
        cli.subprocess, "run", lambda argv, **_: subprocess.CompletedProcess(argv, 2)
    )
    assert main(["-i", str(write(tmp_path, INVENTORY)), "restart", "agent1"]) == 1
    assert "agent1: restart failed (ansible-playbook exit 2)" in capsys.readouterr().err


def test_restart_without_ansible_playbook_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mesh_ops import cli

    def missing(*_: Any, **__: Any) -> None:
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(cli.subprocess, "run", missing)
    assert main(["-i", str(write(tmp_path, INVENTORY)), "restart", "agent1"]) == 1
    err = capsys.readouterr().err
    assert "agent1: cannot run" in err and "No such file or directory" in err
    assert "Traceback" not in err
