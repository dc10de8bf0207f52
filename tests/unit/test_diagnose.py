import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from mcp_mesh_sdk.cli import main
from mcp_mesh_sdk.diagnose import diagnose


class FakeProbe:
    def __init__(self, cpu=10.0, memory=40.0, disk=30.0) -> None:
        self.cpu, self.mem, self.disk_percent = cpu, memory, disk
        self.disks_measured: list[Path] = []

    def cpu_percent(self) -> float:
        return self.cpu

    def memory(self) -> tuple[float, float]:
        return self.mem, 2048.0

    def disk(self, path: Path) -> tuple[float, float, float]:
        self.disks_measured.append(path)
        return self.disk_percent, 10.0, 100.0

    def load_average(self) -> list[float]:
        return [0.1, 0.2, 0.3]


def run_diagnose(tmp_path, probe, **kwargs):
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    return diagnose(state, None, agent_port=None, agent_expected=False, probe=probe, **kwargs)


def test_healthy_host(tmp_path) -> None:
    report = run_diagnose(tmp_path, FakeProbe())
    assert report["status"] == "healthy"
    assert report["issues"] == []
    assert report["system"]["load_average"] == [0.1, 0.2, 0.3]
    assert {p["path"] for p in report["paths"]} >= {"/tmp", "/var/log", str(tmp_path / "state")}


@pytest.mark.parametrize(
    ("probe", "issue"),
    [
        (FakeProbe(cpu=80.1), "High CPU usage: 80.1%"),
        (FakeProbe(memory=90.5), "High memory usage: 90.5%"),
        (FakeProbe(disk=85.5), "High disk usage: 85.5%"),
    ],
)
def test_thresholds_raise_issues(tmp_path, probe, issue) -> None:
    report = run_diagnose(tmp_path, probe)
    assert report["status"] == "issues"
    assert any(found.startswith(issue) for found in report["issues"])


def test_values_at_the_threshold_are_fine(tmp_path) -> None:
    assert run_diagnose(tmp_path, FakeProbe(cpu=80, memory=90, disk=85))["issues"] == []


def test_disk_holding_the_data_is_measured_even_before_it_exists(tmp_path) -> None:
    probe = FakeProbe()
    data = tmp_path / "not" / "yet" / "data"
    report = diagnose(tmp_path, data, agent_port=None, agent_expected=False, probe=probe)
    assert any(str(data) in disk["paths"] for disk in report["disks"])
    assert "Cannot access data path: " + str(data) in report["issues"]


def test_stopped_agent_is_reported_not_raised(tmp_path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here
    report = diagnose(tmp_path, None, agent_port=port, agent_expected=True, probe=FakeProbe())
    assert report["agent"]["running"] is False
    assert any("Agent not running" in issue for issue in report["issues"])


@pytest.fixture
def fake_agent():
    class Handler(BaseHTTPRequestHandler):
        status = "healthy"

        def do_GET(self) -> None:
            body = json.dumps({"status": Handler.status, "checks": {}}).encode()
            self.send_response(200 if Handler.status == "healthy" else 503)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], Handler
    server.shutdown()
    server.server_close()


def test_running_agent_detail_is_included(tmp_path, fake_agent) -> None:
    port, handler = fake_agent
    report = diagnose(tmp_path, None, agent_port=port, agent_expected=True, probe=FakeProbe())
    assert report["agent"]["running"] is True
    assert report["agent"]["detailed"]["status"] == "healthy"
    assert report["issues"] == []
    handler.status = "degraded"
    report = diagnose(tmp_path, None, agent_port=port, agent_expected=True, probe=FakeProbe())
    assert any("degraded" in issue for issue in report["issues"])


def test_cli_json_and_exit_codes(tmp_path, capsys, fake_agent) -> None:
    port, _ = fake_agent
    env_file = tmp_path / "agent.env"
    env_file.write_text(
        f"MCP_MESH_STATE_DIR={tmp_path}\nBASE_DIRECTORY={tmp_path}\nMCP_MESH_PORT={port}\n"
        "MCP_MESH_TOKEN=abcdefghijklmnopqrstuvwxyz\n"
    )
    code = main(["diagnose", "--json", "--cpu-interval", "0", "--env-file", str(env_file)])
    report = json.loads(capsys.readouterr().out)
    assert code == (1 if report["issues"] else 0)
    assert report["agent"]["running"] is True
    assert report["env_file"] == str(env_file)


def test_cli_could_not_run_exits_2(tmp_path, capsys) -> None:
    code = main(["diagnose", "--json", "--env-file", str(tmp_path / "absent.env")])
    assert code == 2
    assert "absent.env" in capsys.readouterr().err
