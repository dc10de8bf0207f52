import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from conftest import request
from processes import Service, free_port, http

pytestmark = pytest.mark.integration
TOKEN = "integration-registry-token"
KEY, OTHER_KEY = "agent-own-key-" + "k" * 32, "someone-else-" + "o" * 32


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
    listed = http("GET", f"{base}/agents?status={status}", token=TOKEN)[1]["agents"]
    return [agent["name"] for agent in listed]


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
    assert [a["name"] for a in http("GET", f"{base}/agents", token=TOKEN)[1]["agents"]] == ["keep"]


def test_logs_are_json_lines_without_the_token(registry) -> None:
    service, base = registry
    http("POST", f"{base}/agents/register", {"name": "x", "host": "h", "port": 1}, TOKEN)
    service.stop()
    lines = [json.loads(line) for line in service.log().splitlines() if line.startswith("{")]
    assert any(line["message"] == "registry ready" for line in lines)
    assert TOKEN not in service.log()


def register(base: str, body: dict, key: str | None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {TOKEN}"} | ({"X-Mesh-Agent-Key": key} if key else {})
    reply = request(f"{base}/agents/register", method="POST", headers=headers, body=body)
    return reply.status, reply.json()


def test_only_the_agent_holding_its_key_changes_its_entry(registry) -> None:
    service, base = registry
    real = {"name": "a1", "host": "10.0.0.5", "port": 8080, "version": "1.0.0"}
    assert register(base, real, KEY)[0] == 200
    forged = {**real, "host": "10.6.6.6", "port": 9999}
    for key in (None, OTHER_KEY):  # the shared token alone, and with another key
        status, body = register(base, forged, key)
        assert status == 409 and "bound to an agent key" in body["error"]
    [entry] = http("GET", f"{base}/agents", token=TOKEN)[1]["agents"]
    assert (entry["host"], entry["port"]) == ("10.0.0.5", 8080)
    heartbeat = request(
        f"{base}/agents/a1/heartbeat",
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "X-Mesh-Agent-Key": KEY},
    )
    assert heartbeat.status == 200
    service.stop()
    assert KEY not in service.log() and OTHER_KEY not in service.log()


def test_registry_forget_lets_a_rebuilt_host_bind_its_name_anew(registry, tmp_path) -> None:
    _service, base = registry
    body = {"name": "a1", "host": "10.0.0.5", "port": 8080}
    assert register(base, body, KEY)[0] == 200
    assert register(base, body, OTHER_KEY)[0] == 409  # the rebuilt host has a new key
    env_file = tmp_path / "registry.env"
    env_file.write_text(f"MCP_MESH_REGISTRY_DB={tmp_path / 'registry.db'}\n")
    forget = [sys.executable, "-m", "mcp_mesh_sdk", "registry", "forget", "a1",
              "--env-file", str(env_file)]  # fmt: skip
    done = subprocess.run(forget, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "forgot a1" in done.stdout
    assert register(base, body, OTHER_KEY)[0] == 200
    assert register(base, body, KEY)[0] == 409  # now bound to the rebuilt host's key


def test_registry_forget_never_creates_a_database(tmp_path) -> None:
    missing = tmp_path / "nowhere" / "registry.db"
    done = subprocess.run(
        [sys.executable, "-m", "mcp_mesh_sdk", "registry", "forget", "a1"],
        env={"PATH": "/usr/bin:/bin", "MCP_MESH_REGISTRY_DB": str(missing)},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode != 0
    assert f"no registry database at {missing}" in done.stderr
    assert not missing.parent.exists()


def test_reads_need_the_token_probes_do_not(registry) -> None:
    _service, base = registry
    for path in ("/agents", "/agents?status=healthy", "/metrics"):
        assert http("GET", base + path)[0] == 401
        assert http("GET", base + path, token="wrong-token")[0] == 401
    assert http("GET", f"{base}/health")[0] == 200
    assert http("GET", f"{base}/ready")[0] == 200


def test_a_huge_declared_body_is_refused_before_it_is_sent(registry) -> None:
    _service, base = registry
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(
            b"POST /agents/register HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {TOKEN}\r\n".encode()
            + b"Content-Type: application/json\r\n"
            + f"Content-Length: {100 * 1024 * 1024}\r\n\r\n".encode()
            + b'{"name": "a1", '
        )
        started = time.monotonic()
        answer = client.recv(4096)
        assert time.monotonic() - started < 2
    assert answer.startswith(b"HTTP/1.1 413 ")


def test_a_chunked_body_is_cut_off_at_the_limit(registry) -> None:
    _service, base = registry
    port = int(base.rsplit(":", 1)[1])
    chunk = b"%x\r\n%s\r\n" % (16 * 1024, b" " * 16 * 1024)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(
            b"POST /agents/register HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {TOKEN}\r\n".encode()
            + b"Transfer-Encoding: chunked\r\n\r\n"
            + chunk * 5  # 80 KiB and no end: the registry answers without waiting for more
        )
        answer = client.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413 ")


def post_raw(url: str, data: bytes) -> tuple[int, dict]:
    prepared = urllib.request.Request(
        url, data=data, method="POST", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    try:
        with urllib.request.urlopen(prepared, timeout=5) as answer:  # loopback only
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_bad_and_deeply_nested_json_get_400_and_no_traceback(registry) -> None:
    service, base = registry
    deep = b"[" * 30_000 + b"]" * 30_000  # json.loads raises RecursionError on it
    for body in (deep, b"{not json", b""):
        assert post_raw(f"{base}/agents/register", body) == (
            400, {"error": "body is not valid JSON"}
        )  # fmt: skip
    service.stop()
    assert "Traceback" not in service.log()


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
