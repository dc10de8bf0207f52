"""The fleet status table and verdict: the same from `mesh-ops status` (over SSH) and from
`python -m mesh_ops.status` (what playbooks/fleet_status.yml gathered, on stdin)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from mesh_ops import cli
from mesh_ops.status import fleet_status, main, render_table
from tests.httpserving import serving

HEALTHY: dict[str, Any] = {
    "service": {"ActiveState": "active", "SubState": "running"},
    "health": {"status": 200, "json": {"version": "1.4.0", "uptime_seconds": 90061}},
    "ready": {"status": 200},
    "detailed": {"status": 200, "json": {"checks": {"registry": {"registered": True}}}},
    "incidents": {"rc": 0, "stdout": '{"incidents": []}', "stderr": ""},
}
NOT_READY: dict[str, Any] = {
    **HEALTHY,
    "ready": {"status": 503, "json": {"ready": False}},
    "detailed": {"status": 503, "json": {"checks": {"registry": {"registered": False}}}},
}
BALANCER = {
    "rc": 0,
    "stdout": json.dumps({"servers": [{"server": "agent1", "status": "UP"},
                                      {"server": "agent2", "status": "DRAIN"}]}),
    "stderr": "",
}  # fmt: skip
INVENTORY = """
all:
  children:
    agents:
      hosts:
        agent1: {ansible_host: 10.0.0.11}
        agent2: {ansible_host: 10.0.0.12}
        agent3: {ansible_host: 10.0.0.13}
    loadbalancer:
      hosts:
        lb1: {ansible_host: 10.0.0.10}
"""
GATHERED = {"agent1": HEALTHY, "agent2": NOT_READY, "agent3": None}


def cells(text: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in text.splitlines()[1:] if line.strip()}


def test_rows_and_verdict_name_every_agent_that_does_not_serve() -> None:
    status = fleet_status(GATHERED, BALANCER)
    assert status["healthy"] is False
    assert status["unhealthy"] == ["agent2", "agent3"]
    table = render_table(status)
    assert table.splitlines()[0].split() == [
        "HOST", "VERSION", "ACTIVE", "READY", "REGISTERED", "UPTIME", "INCIDENTS", "LB",
    ]  # fmt: skip
    rows = cells(table)
    assert rows["agent1"][1:] == ["1.4.0", "yes", "yes", "yes", "1d01h", "0", "UP"]
    assert rows["agent2"][1:] == ["1.4.0", "yes", "no", "no", "1d01h", "0", "DRAIN"]
    assert "unreachable" in " ".join(rows["agent3"])


def test_healthy_fleet_and_a_load_balancer_that_cannot_be_read() -> None:
    assert fleet_status({"agent1": HEALTHY}, BALANCER)["healthy"] is True
    assert fleet_status({"agent1": HEALTHY})["healthy"] is True  # no load balancer to ask
    assert "LB" not in render_table(fleet_status({"agent1": HEALTHY}))
    broken = {"rc": 1, "stdout": "", "stderr": "no HAProxy admin socket"}
    status = fleet_status({"agent1": HEALTHY}, broken)
    assert status["unhealthy"] == ["the load balancer (its servers could not be read)"]
    assert cells(render_table(status))["agent1"][-1] == "?"


def test_stdin_command_prints_the_table_and_the_verdict(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gathered = {"hosts": GATHERED, "balancer": BALANCER}
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(gathered)))
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out == render_table(fleet_status(GATHERED, BALANCER)) + (
        "\nfleet NOT healthy: agent2, agent3\n"
    )
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(gathered)))
    assert main(["--json"]) == 0
    assert json.loads(capsys.readouterr().out) == fleet_status(GATHERED, BALANCER)


@pytest.mark.parametrize("stdin", ["not json", "[]", '{"hosts": []}'])
def test_stdin_command_refuses_bad_input_with_a_message(
    stdin: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "cannot read the gathered results" in err and "Traceback" not in err


def fake_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Agents and load balancer answer as in GATHERED; agent3 does not answer over SSH."""

    def on_each(hosts: list[Any], work: Any) -> list[Any]:
        if work is cli.balancer_probe:
            return [(host, BALANCER, None) for host in hosts]
        return [
            (h, None, f"{h.name} ({h.address}) did not answer over SSH: timed out")
            if GATHERED[h.name] is None
            else (h, GATHERED[h.name], None)
            for h in hosts
        ]

    monkeypatch.setattr(cli, "on_each", on_each)


def test_mesh_ops_status_prints_the_same_table_and_exits_1_unless_healthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_hosts(monkeypatch)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(INVENTORY)
    assert cli.main(["-i", str(inventory), "status"]) == 1
    shown = capsys.readouterr()
    assert shown.out == render_table(fleet_status(GATHERED, BALANCER)) + "\n"
    assert "FAILED agent3 (10.0.0.13) did not answer over SSH" in shown.err
    assert "fleet NOT healthy: agent2, agent3" in shown.err

    assert cli.main(["-i", str(inventory), "status", "--json"]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed["healthy"] is False and printed["unhealthy"] == ["agent2", "agent3"]
    assert [row["host"] for row in printed["rows"]] == ["agent1", "agent2", "agent3"]
    assert printed["rows"][1]["balancer"] == "DRAIN"
    assert printed["failures"] == ["agent3 (10.0.0.13) did not answer over SSH: timed out"]


def test_the_ssh_probe_reads_an_agent_in_the_shape_the_table_takes(tmp_path: Path) -> None:
    """The probe `mesh-ops status` runs on each agent, run here against a stand-in agent."""
    import subprocess
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from mesh_ops.remote import STATUS_PROBE

    answers = {
        "/health": (200, {"version": "1.4.0", "uptime_seconds": 61}),
        "/ready": (503, {"ready": False}),
        "/health/detailed": (200, {"checks": {"registry": {"registered": True}}}),
    }

    class Agent(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = answers[self.path]
            self.send_response(status)
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def log_message(self, *_: Any) -> None:
            pass

    env_file = tmp_path / "agent.env"
    cli_stub = tmp_path / "mcp-mesh-sdk"
    cli_stub.write_text('#!/bin/sh\necho \'{"incidents": [{"id": "INC-1"}]}\'\n')
    cli_stub.chmod(0o755)
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Agent)) as server:
        port = str(server.server_address[1])
        env_file.write_text(f'MCP_MESH_TOKEN="{"t" * 32}"\nMCP_MESH_HOST="127.0.0.1"\n'
                            f'MCP_MESH_PORT="{port}"\n')  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-c", STATUS_PROBE, str(env_file), str(cli_stub), "no-such.service"],
            capture_output=True, text=True, check=True, timeout=30,
        )  # fmt: skip
    [row] = fleet_status({"agent1": json.loads(done.stdout)})["rows"]
    assert (row["version"], row["ready"], row["registered"], row["open_incidents"]) == (
        "1.4.0",
        False,
        True,
        1,
    )
    assert row["active"] is False and row["uptime_seconds"] == 61
