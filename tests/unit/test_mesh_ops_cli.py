"""mesh-ops on the controller: the inventory it reads, the status table, bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mesh_ops.cli import main
from mesh_ops.inventory import InventoryError, load_inventory
from mesh_ops.status import fleet_status, render_table, table, uptime

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
    assert inventory.host("lb1").user is None  # no ansible_user: SSH's default, as for Ansible
    with pytest.raises(InventoryError, match="no group 'registry'"):
        inventory.group("registry")
    with pytest.raises(InventoryError, match="no host 'agent9'"):
        inventory.host("agent9")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- not: an inventory", "(?s)cannot read .*YAML inventory has invalid structure"),
        ("all: [", "(?s)cannot read .*YAML parsing failed"),
        ("all: {}", "no hosts"),
    ],
)
def test_bad_inventory_is_refused_with_a_message(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InventoryError, match=message):
        load_inventory(write(tmp_path, text))


def test_status_row_from_a_probe() -> None:
    probe: dict[str, Any] = {
        "service": {"ActiveState": "active"},
        "health": {"status": 200, "json": {"version": "1.2.3", "uptime_seconds": 3720}},
        "ready": {"status": 200},
        "detailed": {"status": 200, "json": {"checks": {"registry": {"registered": True}}}},
        "incidents": {"rc": 0, "stdout": '{"incidents": [{"id": "INC-1"}]}', "stderr": ""},
    }
    stopped = {"service": {"ActiveState": "inactive"}, "health": {"status": -1},
               "ready": {"status": -1}, "detailed": {"status": -1},
               "incidents": {"rc": 1, "stdout": "", "stderr": "boom"}}  # fmt: skip
    rows = render_table(fleet_status({"agent1": probe, "agent2": stopped})).splitlines()[1:]
    assert rows[0].split() == ["agent1", "1.2.3", "yes", "yes", "yes", "1h02m", "1"]
    assert rows[1].split() == ["agent2", "-", "no", "no", "no", "-", "?"]


def test_table_and_uptime() -> None:
    assert table(["A", "BB"], [["xyz", "1"]]) == "A    BB\nxyz  1"
    assert uptime(2 * 86400 + 3600) == "2d01h"
    assert uptime(None) == "-"


def test_missing_inventory_and_unknown_host_exit_1_with_a_message(
    tmp_path: Path, capsys: Any
) -> None:
    assert main(["-i", str(tmp_path / "none.yml"), "status"]) == 1
    err = capsys.readouterr().err
    assert "cannot read inventory" in err and "Traceback" not in err
    assert main(["-i", str(write(tmp_path, INVENTORY)), "logs", "agent9"]) == 1
    assert "no host 'agent9'" in capsys.readouterr().err


REAL_RUN = subprocess.run


def fake_playbooks(monkeypatch: pytest.MonkeyPatch, fake: Any) -> None:
    """`fake` runs instead of ansible-playbook; ansible-inventory still reads the inventory."""

    def run(argv: list[str], **kwargs: Any) -> Any:
        if Path(argv[0]).name == "ansible-inventory":
            return REAL_RUN(argv, **kwargs)
        return fake(argv, **kwargs)

    monkeypatch.setattr(subprocess, "run", run)


def test_restart_runs_the_host_cycle_playbook_limited_to_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[list[str]] = []

    def fake_run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0)

    fake_playbooks(monkeypatch, fake_run)
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
    fake_playbooks(monkeypatch, lambda *a, **k: pytest.fail("ran a playbook"))
    assert main(["-i", str(write(tmp_path, INVENTORY)), "restart", "lb1"]) == 1
    assert "lb1 is not in group agents" in capsys.readouterr().err


def test_a_failed_restart_says_so_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_playbooks(monkeypatch, lambda argv, **_: subprocess.CompletedProcess(argv, 2))
    assert main(["-i", str(write(tmp_path, INVENTORY)), "restart", "agent1"]) == 1
    assert "agent1: restart failed (ansible-playbook exit 2)" in capsys.readouterr().err


def test_restart_without_ansible_playbook_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing(*_: Any, **__: Any) -> None:
        raise FileNotFoundError(2, "No such file or directory")

    fake_playbooks(monkeypatch, missing)
    assert main(["-i", str(write(tmp_path, INVENTORY)), "restart", "agent1"]) == 1
    err = capsys.readouterr().err
    assert "agent1: cannot run" in err and "No such file or directory" in err
    assert "Traceback" not in err


def fake_hosts(monkeypatch: pytest.MonkeyPatch, replies: dict[str, Any]) -> list[str]:
    """Each host answers `mcp-mesh-sdk security ... --json` with replies[host] (a str: it
    failed with that message); returns the commands run."""
    import mesh_ops.security as security

    commands: list[str] = []

    def on_each(hosts: list[Any], work: Any) -> list[tuple[Any, Any, str | None]]:
        results = []
        for host in hosts:
            reply = replies[host.name]
            if isinstance(reply, str):
                results.append((host, None, reply))
            else:
                results.append((host, work(None, host), None))
        return results

    def run_json(connection: Any, host: Any, command: str) -> Any:
        commands.append(command)
        return replies[host.name]

    monkeypatch.setattr(security, "on_each", on_each)
    monkeypatch.setattr(security, "run_json", run_json)
    return commands


BLOCK = {"source": "203.0.113.7", "scope": "unauthenticated", "reason": "more than 100 requests",
         "since": "2026-11-30T03:00:00+00:00", "until": "2026-11-30T04:00:00+00:00"}  # fmt: skip


def test_security_list_shows_every_agent_s_blocks_and_names_a_silent_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = fake_hosts(
        monkeypatch, {"agent1": {"blocked": [BLOCK]}, "agent2": "agent2 did not answer over SSH"}
    )
    assert main(["-i", str(write(tmp_path, INVENTORY)), "security", "list"]) == 1
    out, err = capsys.readouterr()
    [row] = out.splitlines()[1:]
    assert row.split()[:3] == ["agent1", "203.0.113.7", "unauthenticated"]
    assert "FAILED agent2 did not answer" in err
    assert commands == ["/opt/mcp-mesh/current/venv/bin/mcp-mesh-sdk security list --json"]


def test_security_unblock_lifts_the_source_on_every_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = fake_hosts(
        monkeypatch, {"agent1": {"unblocked": True}, "agent2": {"unblocked": False}}
    )
    inventory = str(write(tmp_path, INVENTORY))
    assert main(["-i", inventory, "security", "unblock", "203.0.113.7", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["unblocked_on"], document["not_blocked_on"]) == (["agent1"], ["agent2"])
    assert all(c.endswith("security unblock 203.0.113.7 --json") for c in commands)
    assert main(["-i", inventory, "security", "unblock", "203.0.113.7"]) == 0
    assert capsys.readouterr().out.startswith("203.0.113.7: unblocked on agent1")


def test_security_unblock_refuses_a_source_no_agent_could_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = fake_hosts(monkeypatch, {})
    inventory = str(write(tmp_path, INVENTORY))
    assert main(["-i", inventory, "security", "unblock", "1.2.3.4; reboot"]) == 1
    assert "is not an address an agent could have blocked" in capsys.readouterr().err
    assert commands == []
