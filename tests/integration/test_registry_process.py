import json
import subprocess
import sys
import time

import pytest
from processes import Service, free_port, http

pytestmark = pytest.mark.integration
TOKEN = "integration-registry-token"


@pytest.fixture
def registry(tmp_path):
    port = free_port()
    env = {
        "MCP_MESH_REGISTRY_HOST": "127.0.0.1",
        "MCP_MESH_REGISTRY_PORT": str(port),
        "MCP_MESH_REGISTRY_DB": str(tmp_path / "registry.db"),
        "MCP_MESH_REGISTRY_TOKEN": TOKEN,
        "HEALTH_INTERVAL": "0.5",
        "MCP_MESH_REGISTRY_STALE_INTERVALS": "2",
    }
    service = Service(["registry"], env, tmp_path / "registry.log").start()
    base = f"http://127.0.0.1:{port}"
    service.wait_http(f"{base}/ready")
    yield service, base
    service.stop()


def names(base: str, status: str) -> list[str]:
    return [agent["name"] for agent in http("GET", f"{base}/agents?status={status}")[1]["agents"]]


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_agent_goes_stale_and_comes_back(registry) -> None:
    _service, base = registry
    body = {"name": "a1", "host": "127.0.0.1", "port": 9, "version": "1.0.0", "capabilities": []}
    assert http("POST", f"{base}/agents/register", body, TOKEN)[0] == 200
    assert names(base, "healthy") == ["a1"]
    assert wait_for(lambda: names(base, "stale") == ["a1"])  # > 2 x 0.5 s without heartbeat
    assert http("POST", f"{base}/agents/a1/heartbeat", token=TOKEN)[0] == 200
    assert names(base, "healthy") == ["a1"]


def test_rows_survive_a_registry_restart(registry, tmp_path) -> None:
    service, base = registry
    body = {"name": "keep", "host": "h", "port": 80, "version": "1.0.0", "capabilities": ["x"]}
    assert http("POST", f"{base}/agents/register", body, TOKEN)[0] == 200
    assert service.stop() == 0
    assert "registry stopped" in service.log()
    service.start()
    service.wait_http(f"{base}/ready")
    assert [a["name"] for a in http("GET", f"{base}/agents")[1]["agents"]] == ["keep"]


def test_logs_are_json_lines_without_the_token(registry) -> None:
    service, base = registry
    http("POST", f"{base}/agents/register", {"name": "x", "host": "h", "port": 1}, TOKEN)
    service.stop()
    lines = [json.loads(line) for line in service.log().splitlines() if line.startswith("{")]
    assert any(line["message"] == "registry ready" for line in lines)
    assert TOKEN not in service.log()


def test_bad_environment_exits_naming_the_variable(tmp_path) -> None:
    env = {"MCP_MESH_REGISTRY_PORT": "99999", "MCP_MESH_REGISTRY_TOKEN": TOKEN}
    done = subprocess.run(
        [sys.executable, "-m", "mcp_mesh_sdk", "registry"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "MCP_MESH_REGISTRY_PORT" in done.stderr
    assert "Traceback" not in done.stderr


def test_port_in_use_is_a_clear_error(registry, tmp_path) -> None:
    _, base = registry
    port = base.rsplit(":", 1)[1]
    env = {
        "MCP_MESH_REGISTRY_HOST": "127.0.0.1",
        "MCP_MESH_REGISTRY_PORT": port,
        "MCP_MESH_REGISTRY_DB": str(tmp_path / "other.db"),
        "MCP_MESH_REGISTRY_TOKEN": TOKEN,
    }
    done = subprocess.run(
        [sys.executable, "-m", "mcp_mesh_sdk", "registry"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_tells_systemd_ready_watchdog_and_stopping(tmp_path, notify_socket) -> None:
    port = free_port()
    env = {
        "MCP_MESH_REGISTRY_HOST": "127.0.0.1",
        "MCP_MESH_REGISTRY_PORT": str(port),
        "MCP_MESH_REGISTRY_DB": str(tmp_path / "registry.db"),
        "MCP_MESH_REGISTRY_TOKEN": TOKEN,
        "NOTIFY_SOCKET": notify_socket.getsockname(),
        "WATCHDOG_USEC": "400000",  # a ping every 0.2 s
    }
    service = Service(["registry"], env, tmp_path / "registry.log").start()
    try:
        messages = [notify_socket.recv(4096).decode() for _ in range(3)]
        assert any("READY=1" in m for m in messages)
        assert any("WATCHDOG=1" in m for m in messages)
        assert http("GET", f"http://127.0.0.1:{port}/ready")[0] == 200
    finally:
        assert service.stop() == 0
    rest = []
    notify_socket.settimeout(2)
    try:
        while True:
            rest.append(notify_socket.recv(4096).decode())
    except TimeoutError:
        pass
    assert any("STOPPING=1" in m for m in rest)


def test_check_config_validates_a_registry_env_file(tmp_path) -> None:
    env_file = tmp_path / "registry.env"
    env_file.write_text(f"MCP_MESH_REGISTRY_TOKEN={TOKEN}\nMCP_MESH_REGISTRY_PORT=8000\n")
    good = subprocess.run(
        [sys.executable, "-m", "mcp_mesh_sdk", "check-config", "--service", "registry",
         "--env-file", str(env_file), "--json"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert TOKEN not in good.stdout
    env_file.write_text("MCP_MESH_REGISTRY_PORT=0\n")
    bad = subprocess.run(
        [sys.executable, "-m", "mcp_mesh_sdk", "check-config", "--service", "registry",
         "--env-file", str(env_file)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert bad.returncode != 0
    assert "MCP_MESH_REGISTRY_PORT" in bad.stderr and "MCP_MESH_REGISTRY_TOKEN" in bad.stderr
