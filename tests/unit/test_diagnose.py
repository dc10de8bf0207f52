import json
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from mcp_mesh_sdk.cli import main
from mcp_mesh_sdk.diagnose import diagnose
from tests.httpserving import serving


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

    with serving(HTTPServer(("127.0.0.1", 0), Handler)) as server:
        yield server.server_address[1], Handler


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


def test_report_carries_the_spec_fields(tmp_path) -> None:
    healthy = run_diagnose(tmp_path, FakeProbe(cpu=12.5, memory=41.0, disk=30.0))
    assert healthy["overall_status"] == "healthy"
    assert healthy["system"]["cpu_percent"] == 12.5
    assert healthy["system"]["memory_percent"] == 41.0
    assert healthy["system"]["disk_usage_percent"] == 30.0
    assert healthy["system"]["load_average"] == [0.1, 0.2, 0.3]
    assert healthy["system"]["issues"] == []
    hot = run_diagnose(tmp_path, FakeProbe(cpu=95.0, disk=90.0))
    assert hot["overall_status"] == "unhealthy" and hot["status"] == "issues"
    assert hot["system"]["issues"] == [
        "High CPU usage: 95.0%",
        f"High disk usage: 90.0% on the disk holding {hot['disks'][0]['paths'][0]}"
        + "".join(f", {p}" for p in hot["disks"][0]["paths"][1:]),
    ]
    assert hot["system"]["issues"] == hot["issues"][:2]


@pytest.mark.parametrize(("root", "other"), [(91.0, 40.0), (40.0, 91.0)])
def test_system_disk_percentage_is_the_fullest_watched_disk(tmp_path, root, other) -> None:
    class TwoDisks(FakeProbe):
        def disk(self, path: Path) -> tuple[float, float, float]:
            return (root if path == Path("/") else other), 1.0, 100.0

    # /proc is always a filesystem of its own: it stands in for a separate data disk.
    report = diagnose(Path("/"), Path("/proc"), agent_port=None, agent_expected=False,
                      probe=TwoDisks())  # fmt: skip
    assert sorted(d["usage_percent"] for d in report["disks"]) == [40.0, 91.0]
    assert report["system"]["disk_usage_percent"] == 91.0


def df_percent(path: Path) -> int:
    import subprocess

    done = subprocess.run(["df", "--output=pcent", str(path)], capture_output=True, text=True,
                          check=True)  # fmt: skip
    return int(done.stdout.splitlines()[-1].strip().rstrip("%"))


def test_disk_percentages_are_what_df_shows(tmp_path) -> None:
    from mcp_mesh_sdk.diagnose import PsutilProbe

    state = tmp_path / "state"
    state.mkdir()
    report = diagnose(state, None, agent_port=None, agent_expected=False,
                      probe=PsutilProbe(cpu_interval=0))  # fmt: skip
    shown_by_df = []
    for disk in report["disks"]:
        shown_by_df.append(df_percent(Path(disk["paths"][-1])))
        assert abs(disk["usage_percent"] - shown_by_df[-1]) <= 1, (disk, shown_by_df)
    assert abs(report["system"]["disk_usage_percent"] - max(shown_by_df)) <= 1
