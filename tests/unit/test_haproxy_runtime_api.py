"""`mcp-mesh-sdk lb` against a fake HAProxy admin socket (a UNIX socket in a temp dir)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_mesh_sdk.cli import main
from mcp_mesh_sdk.errors import OpsError
from mcp_mesh_sdk.haproxy import AdminSocket, LoadBalancer, parse_show_stat

HEADER = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,weight,status,check_status,addr,\n"


class FakeHAProxy:
    """Answers `show stat` and `set server B/S state X` like HAProxy 2.6 does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.servers: dict[str, dict[str, Any]] = {
            "mcp_mesh_agents/agent1": {"status": "UP", "scur": 0, "addr": "10.0.0.11:8080"},
            "mcp_mesh_agents/agent2": {"status": "UP", "scur": 2, "addr": "10.0.0.12:8080"},
        }
        for server in self.servers.values():
            server.update(weight=100, initial_weight=100)
        self.servers |= {}
        self.commands: list[str] = []
        # Sessions of a draining server end one per `show stat`; None: they never end.
        self.sessions_end = True
        self.up_after_checks = 0  # `show stat` calls before an enabled server reports UP
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        self._sock.listen()
        self._sock.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            with conn:
                line = conn.recv(4096).decode().strip()
                self.commands.append(line)
                conn.sendall(self._answer(line).encode())

    def _answer(self, line: str) -> str:
        if line == "show stat":
            return self._show_stat()
        words = line.split()
        if words[:2] == ["set", "server"] and len(words) == 5 and words[3] == "weight":
            if words[2] not in self.servers:
                return "No such server.\n"
            server, value = self.servers[words[2]], words[4]
            percent = value.endswith("%")
            number = int(value.rstrip("%"))
            server["weight"] = server["initial_weight"] * number // 100 if percent else number
            return "\n"
        if words[:2] == ["set", "server"] and words[3:] == ["health", "up"]:
            if words[2] not in self.servers:
                return "No such server.\n"
            if self.servers[words[2]]["status"] == "DOWN":
                self.servers[words[2]].update(status="UP", checks_to_up=None)
            return "\n"
        if words[:2] == ["set", "server"] and len(words) == 5 and words[3] == "state":
            name, state = words[2], words[4]
            if name not in self.servers:
                return "No such server.\n"
            server = self.servers[name]
            server["status"] = {"drain": "DRAIN", "maint": "MAINT", "ready": "DOWN"}[state]
            server["checks_to_up"] = self.up_after_checks if state == "ready" else None
            return "\n"
        return "Unknown command.\n"

    def _show_stat(self) -> str:
        rows = [HEADER, "mcp_mesh,FRONTEND,,,0,0,4096,0,,OPEN,,,\n"]
        for name, server in self.servers.items():
            if server["status"] == "DRAIN" and self.sessions_end and server["scur"] > 0:
                server["scur"] -= 1
            countdown = server.get("checks_to_up")
            if isinstance(countdown, int):
                server["checks_to_up"] = countdown - 1
                if countdown <= 0:
                    server["status"], server["checks_to_up"] = "UP", None
            backend, svname = name.split("/")
            rows.append(
                f"{backend},{svname},0,0,{server['scur']},3,,9,{server['weight']},{server['status']},L7OK,"
                f"{server['addr']},\n"
            )
        rows.append("mcp_mesh_agents,BACKEND,0,0,2,3,,9,2,UP,,,\n")
        return "".join(rows) + "\n"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[FakeHAProxy]:
    fake = FakeHAProxy(tmp_path / "admin.sock")
    yield fake
    fake.close()


class FakeClock:
    """Time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def balancer(fake: FakeHAProxy, clock: FakeClock) -> LoadBalancer:
    return LoadBalancer(AdminSocket(fake.path), sleep=clock.sleep, clock=clock, poll_interval=1.0)


def test_show_stat_lists_servers_without_frontend_and_backend_rows() -> None:
    text = (
        HEADER
        + "fe,FRONTEND,,,0,0,,0,,OPEN,,,\n"
        + "be,agent1,0,0,3,5,,7,1,UP 1/2,L7STS,10.0.0.11:8080,\n"
        + "be,BACKEND,0,0,3,5,,7,1,UP,,,\n"
    )
    [server] = parse_show_stat(text)
    assert server.name == "be/agent1"
    assert (server.status, server.status_detail, server.sessions) == ("UP", "UP 1/2", 3)
    assert (server.check, server.address) == ("L7STS", "10.0.0.11:8080")


def test_an_answer_that_is_not_csv_is_an_ops_error() -> None:
    with pytest.raises(OpsError, match="unexpected answer"):
        parse_show_stat("Permission denied\n")


def test_status_json_lists_every_server(haproxy: FakeHAProxy, capsys) -> None:
    assert main(["lb", "--socket", str(haproxy.path), "status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(s["server"], s["status"], s["sessions"]) for s in data["servers"]] == [
        ("agent1", "UP", 0),
        ("agent2", "UP", 2),
    ]


def test_status_table_names_each_server(haproxy: FakeHAProxy, capsys) -> None:
    assert main(["lb", "--socket", str(haproxy.path), "status"]) == 0
    out = capsys.readouterr().out
    assert "mcp_mesh_agents/agent1" in out and "10.0.0.12:8080" in out


def test_drain_waits_for_sessions_then_puts_the_server_in_maint(haproxy: FakeHAProxy) -> None:
    clock = FakeClock()
    result = balancer(haproxy, clock).drain("agent2", wait=30)
    assert result["drained"] is True and result["sessions_left"] == 0
    assert result["status"] == "MAINT"
    sets = [c for c in haproxy.commands if c.startswith("set")]
    assert sets == [
        "set server mcp_mesh_agents/agent2 state drain",
        "set server mcp_mesh_agents/agent2 state maint",
    ]


def test_drain_is_bounded_when_sessions_never_end(haproxy: FakeHAProxy) -> None:
    haproxy.sessions_end = False
    clock = FakeClock()
    result = balancer(haproxy, clock).drain("mcp_mesh_agents/agent2", wait=5)
    assert result["drained"] is False and result["sessions_left"] == 2
    assert result["status"] == "MAINT"
    assert clock.now == 5


def test_drain_command_exit_code_says_sessions_were_left(haproxy: FakeHAProxy, capsys) -> None:
    haproxy.sessions_end = False
    code = main(["lb", "--socket", str(haproxy.path), "drain", "agent2", "--wait", "0", "--json"])
    assert code == 3
    assert json.loads(capsys.readouterr().out)["sessions_left"] == 2


def test_enable_wait_up_returns_once_checks_pass(haproxy: FakeHAProxy) -> None:
    haproxy.servers["mcp_mesh_agents/agent1"]["status"] = "MAINT"
    haproxy.up_after_checks = 2
    clock = FakeClock()
    result = balancer(haproxy, clock).enable("agent1", wait_up=60)
    assert result["status"] == "UP"
    assert "set server mcp_mesh_agents/agent1 state ready" in haproxy.commands


def test_enable_wait_up_fails_clearly_when_the_server_stays_down(haproxy: FakeHAProxy) -> None:
    haproxy.up_after_checks = 1000
    with pytest.raises(OpsError, match="agent1 is DOWN, not UP, after 3 s"):
        balancer(haproxy, FakeClock()).enable("agent1", wait_up=3)


def test_enable_healthy_marks_the_server_up_without_waiting_for_checks(
    haproxy: FakeHAProxy,
) -> None:
    haproxy.servers["mcp_mesh_agents/agent1"]["status"] = "MAINT"
    haproxy.up_after_checks = 1000
    clock = FakeClock()

    result = balancer(haproxy, clock).enable("agent1", wait_up=3, healthy=True)

    assert result["status"] == "UP"
    assert clock.now == 0
    assert haproxy.commands[-2:] == [
        "set server mcp_mesh_agents/agent1 health up",
        "show stat",
    ]


def test_unknown_server_lists_the_known_ones(haproxy: FakeHAProxy, capsys) -> None:
    assert main(["lb", "--socket", str(haproxy.path), "drain", "agent9"]) == 2
    err = capsys.readouterr().err
    assert "no server 'agent9'" in err and "mcp_mesh_agents/agent1" in err
    assert "Traceback" not in err


def test_missing_socket_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["lb", "--socket", str(tmp_path / "none.sock"), "status"]) == 2
    assert "no HAProxy admin socket at" in capsys.readouterr().err


def test_negative_wait_is_a_config_error(haproxy: FakeHAProxy, capsys) -> None:
    assert main(["lb", "--socket", str(haproxy.path), "drain", "agent1", "--wait", "-1"]) == 78
    assert "--wait: must be 0 to 3600 seconds" in capsys.readouterr().err


def test_enable_with_a_weight_sets_it_before_the_server_takes_traffic(
    haproxy: FakeHAProxy, capsys
) -> None:
    haproxy.servers["mcp_mesh_agents/agent1"]["status"] = "MAINT"
    code = main(["lb", "--socket", str(haproxy.path), "enable", "agent1", "--healthy",
                 "--weight", "25%", "--json"])  # fmt: skip
    assert code == 0
    assert json.loads(capsys.readouterr().out)["weight"] == 25
    sets = [c for c in haproxy.commands if c.startswith("set")]
    assert sets[0] == "set server mcp_mesh_agents/agent1 weight 25%"
    assert sets[1] == "set server mcp_mesh_agents/agent1 state ready"


def test_weight_puts_a_server_back_to_its_configured_weight(haproxy: FakeHAProxy, capsys) -> None:
    haproxy.servers["mcp_mesh_agents/agent2"]["weight"] = 25
    assert main(["lb", "--socket", str(haproxy.path), "weight", "agent2", "100%", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "server": "mcp_mesh_agents/agent2", "status": "UP", "weight": 100,
    }  # fmt: skip


@pytest.mark.parametrize("weight", ["101%", "257", "-1", "half", "%"])
def test_a_weight_haproxy_would_refuse_is_a_usage_error(
    haproxy: FakeHAProxy, capsys, weight: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["lb", "--socket", str(haproxy.path), "weight", "agent1", weight])
    assert exited.value.code == 2
    assert "is not a weight" in capsys.readouterr().err
    assert not [c for c in haproxy.commands if c.startswith("set")]
