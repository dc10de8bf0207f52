"""Bounded serving against real processes on loopback: slow-connection floods and many large
writes at once, with the open-file limit the roles give the units (LimitNOFILE)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import json
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from conftest import AGENT_TOKEN
from processes import Service, free_port

pytestmark = pytest.mark.integration

ROLES = Path(__file__).parents[2] / "roles"
FLOOD = 2000  # slow-header connections from one source, without a token
WRITES = 60  # concurrent 10 MB write_file calls
WRITE_SIZE = 10 * 1024 * 1024 - 1024
MCP_HEADERS = {
    "Authorization": f"Bearer {AGENT_TOKEN}",
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-06-18",
}


def role_default(role: str, name: str) -> Any:
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())[name]


class LimitedService(Service):
    """A Service started with RLIMIT_NOFILE set as its unit's LimitNOFILE sets it."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, files: int) -> None:
        super().__init__(args, env, log_path)
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard != resource.RLIM_INFINITY and hard < files:
            pytest.skip(f"the open-file hard limit {hard} is below the unit's {files}")
        self.files = files

    def start(self) -> LimitedService:
        import subprocess
        import sys

        log = self.log_path.open("ab")
        files = self.files
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mcp_mesh_sdk", *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (files, files)),
        )
        log.close()
        return self


@pytest.fixture(autouse=True)
def room_for_the_flood() -> Iterator[None]:
    """This test process holds FLOOD sockets at once: raise its soft open-file limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FLOOD * 2 + 500
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the open-file hard limit {hard} is below the {wanted} this test needs")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextlib.contextmanager
def slow_connections(port: int, count: int = FLOOD) -> Iterator[list[socket.socket]]:
    """`count` connections that each send half of their request headers, then nothing."""
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.connect(("127.0.0.1", port))
            opened.append(sock)
        time.sleep(0.2)
        for sock in opened:
            with contextlib.suppress(OSError):
                sock.send(b"GET /ready HTTP/1.1\r\nHost: x\r\n")
        yield opened
    finally:
        for sock in opened:
            sock.close()


def timed_get(port: int, path: str) -> tuple[int, float]:
    """(status, seconds) of one GET on a fresh connection; status 0 when it failed."""
    started = time.monotonic()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", path)
        answer = connection.getresponse()
        answer.read()
        connection.close()
        return answer.status, time.monotonic() - started
    except OSError:
        return 0, time.monotonic() - started


def wait_listening(service: Service, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert service.process is not None and service.process.poll() is None, service.log()
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.01)
    raise TimeoutError(service.log())


def mcp_call(port: int, tool: str, timeout: float = 60, **arguments: Any) -> tuple[int, Any]:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": tool, "arguments": arguments}})  # fmt: skip
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", "/mcp", body=body, headers=MCP_HEADERS)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


@pytest.fixture
def limited_agent(agent_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Service, int]]:
    """An agent with the role's LimitNOFILE, started but not waited for."""
    port = int(agent_env["MCP_MESH_PORT"])
    files = int(role_default("mesh_agent", "mesh_agent_limit_nofile"))
    service = LimitedService(["serve"], agent_env, tmp_path / "agent.log", files).start()
    try:
        yield service, port
    finally:
        service.stop()


def assert_ready_answers_fast(service: Service, port: int, seconds: float = 1.0) -> None:
    status, took = timed_get(port, "/ready")
    assert status in (200, 503) and took < seconds, (status, took, service.log()[-2000:])


def test_agent_outlives_slow_connection_floods_at_start_and_while_serving(limited_agent):
    service, port = limited_agent
    wait_listening(service, port)
    with slow_connections(port):  # right after start: the SDK is still being imported
        # The first answer waits for the flood's connections ahead of it to be accepted
        # while the SDK import competes for the CPU; from then on every /ready is fast.
        started = time.monotonic()
        while timed_get(port, "/livez")[0] != 200:
            assert service.process.poll() is None, service.log()[-3000:]
            assert time.monotonic() - started < 10, service.log()[-3000:]
        for _ in range(5):
            assert_ready_answers_fast(service, port)
            time.sleep(0.3)
        deadline = time.monotonic() + 20
        while timed_get(port, "/ready")[0] != 200 and time.monotonic() < deadline:
            assert service.process.poll() is None, service.log()[-3000:]
            time.sleep(0.2)
        assert timed_get(port, "/ready")[0] == 200, service.log()[-3000:]
    with slow_connections(port):  # once serving
        for _ in range(5):
            status, took = timed_get(port, "/ready")
            assert status == 200 and took < 1.0, (status, took)
            time.sleep(0.2)
        assert mcp_call(port, "write_file", path="during.txt", content="still here")[0] == 200
    assert service.process.poll() is None
    status, answer = mcp_call(port, "read_file", path="during.txt")
    assert status == 200 and answer["result"]["content"][0]["text"] == "still here"
    assert mcp_call(port, "list_directory", path=".")[0] == 200
    log_bytes = service.log_path.stat().st_size
    assert log_bytes < 1024 * 1024, f"{log_bytes} bytes of log"


def test_sixty_concurrent_ten_megabyte_writes_stay_within_memory(limited_agent):
    service, port = limited_agent
    service.wait_http(f"http://127.0.0.1:{port}/ready", timeout=20)
    process = psutil.Process(service.process.pid)
    rss = [process.memory_info().rss]
    sampling = True

    def sample() -> None:
        while sampling:
            rss.append(process.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    content = "x" * WRITE_SIZE
    with concurrent.futures.ThreadPoolExecutor(WRITES) as pool:
        calls = [pool.submit(mcp_call, port, "write_file", path=f"big-{n}.txt", content=content)
                 for n in range(WRITES)]  # fmt: skip
        outcomes = [call.result(timeout=120) for call in calls]
    del content
    settled = time.monotonic() + 10
    while process.memory_info().rss > 100 * 2**20 and time.monotonic() < settled:
        time.sleep(0.2)
    sampling = False
    sampler.join(2)
    after = process.memory_info().rss

    succeeded = busy = 0
    for status, answer in outcomes:
        if status == 200 and not answer["result"].get("isError"):
            succeeded += 1
        elif status == 503:
            assert answer["error"] == "busy" and "retry" in answer["reason"], answer
            busy += 1
        else:
            text = answer["result"]["content"][0]["text"]
            assert status == 200 and text.startswith("busy:"), (status, answer)
            busy += 1
    assert succeeded + busy == WRITES and succeeded >= 5
    assert max(rss) <= 300 * 2**20, f"peak RSS {max(rss) / 2**20:.0f} MB"
    assert after < 100 * 2**20, f"RSS afterwards {after / 2**20:.0f} MB"


def test_registry_outlives_a_slow_connection_flood(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "MCP_MESH_REGISTRY_HOST": "127.0.0.1",
        "MCP_MESH_REGISTRY_PORT": str(port),
        "MCP_MESH_REGISTRY_DB": str(tmp_path / "registry.db"),
        "MCP_MESH_REGISTRY_TOKEN": "integration-registry-token-0123456789",
    }
    files = int(role_default("mesh_registry", "mesh_registry_limit_nofile"))
    service = LimitedService(["registry"], env, tmp_path / "registry.log", files).start()
    try:
        wait_listening(service, port)
        with slow_connections(port):
            for _ in range(3):
                status, took = timed_get(port, "/health")
                assert status == 200 and took < 1.0, (status, took, service.log()[-2000:])
                time.sleep(0.2)
        assert service.process.poll() is None
        assert service.log_path.stat().st_size < 1024 * 1024
    finally:
        service.stop()
