"""Start-up and shutdown of the real agent: systemd notifications, drain, bad environments.

The slow request uses MCP_MESH_TEST_TOOL_DELAY, a test-only setting that makes every tool
call sleep first (check-config warns when it is set).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import AGENT_TOKEN, request, run_service, wait_until
from test_agent_mcp import with_session

pytestmark = pytest.mark.integration


def messages_until(sock: socket.socket, wanted: str, timeout: float = 20.0) -> list[str]:
    """Datagrams received on the notify socket up to (and with) the one holding `wanted`."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            datagram = sock.recv(4096).decode()
        except TimeoutError:
            break
        seen.append(datagram)
        if wanted in datagram.splitlines():
            return seen
    raise AssertionError(f"{wanted} never arrived; got {seen}")


def test_ready_arrives_on_notify_socket_once_the_agent_serves(
    agent_env: dict[str, str], notify_socket: socket.socket, tmp_path: Path
) -> None:
    env = {**agent_env, "NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "400000"}
    base = f"http://127.0.0.1:{env['MCP_MESH_PORT']}"
    with run_service(["serve"], env, log_path=tmp_path / "agent.log") as service:
        before = messages_until(notify_socket, "READY=1")
        assert request(base + "/ready").status == 200  # bound and ready when READY=1 came
        assert any(line.startswith("STATUS=ready") for m in before for line in m.splitlines())
        messages_until(notify_socket, "WATCHDOG=1")  # pinged from the serving loop
        assert service.process is not None
        service.process.send_signal(signal.SIGTERM)
        messages_until(notify_socket, "STOPPING=1")
        assert service.process.wait(15) == 0


def test_sigterm_lets_a_slow_request_finish_while_ready_turns_503(
    agent_env: dict[str, str], start_agent
) -> None:
    agent_env.update(MCP_MESH_TEST_TOOL_DELAY="2.5", MCP_MESH_DRAIN_DELAY="1.5")
    agent = start_agent(agent_env)
    (agent.data / "slow.txt").write_text("worth the wait")
    outcome: dict[str, Any] = {}

    def slow_call() -> None:
        async def work(session: Any) -> Any:
            await session.list_tools()  # else the client asks for the schema after the call,
            return await session.call_tool("read_file", {"path": "slow.txt"})  # listener closed

        try:
            outcome["result"] = with_session(agent.mcp_url, work)
        except BaseException as exc:  # reported by the assertion below
            outcome["error"] = exc

    caller = threading.Thread(target=slow_call)
    caller.start()
    running = 'mcp_mesh_agent_operations_in_progress{operation="read_file"} 1.0'
    assert wait_until(lambda: running in agent.get("/metrics").text, timeout=10)
    process = agent.service.process
    assert process is not None
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    ready = agent.get("/ready")
    assert (ready.status, ready.json()) == (503, {"status": "not_ready", "reason": "draining"})
    assert agent.get("/health").status == 200  # still serving while the balancer drains it
    caller.join(15)
    assert "error" not in outcome, outcome.get("error")
    assert not outcome["result"].is_error
    assert outcome["result"].content[0].text == "worth the wait"
    assert process.wait(15) == 0
    assert time.monotonic() - signalled >= 1.5  # the listener stayed open for the drain delay


def test_a_request_slower_than_the_graceful_timeout_does_not_hold_the_stop(
    agent_env: dict[str, str], start_agent
) -> None:
    agent_env.update(MCP_MESH_TEST_TOOL_DELAY="30", MCP_MESH_GRACEFUL_TIMEOUT="1")
    agent = start_agent(agent_env)
    (agent.data / "stuck.txt").write_text("never read")
    caller = threading.Thread(target=lambda: _read_quietly(agent.mcp_url, "stuck.txt"))
    caller.start()
    running = 'mcp_mesh_agent_operations_in_progress{operation="read_file"} 1.0'
    assert wait_until(lambda: running in agent.get("/metrics").text, timeout=10)
    process = agent.service.process
    assert process is not None
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    assert time.monotonic() - signalled < 5  # 1 s grace (+ shutdown), not the 30 s call
    caller.join(15)


def _read_quietly(url: str, path: str) -> None:
    async def work(session: Any) -> Any:
        await session.list_tools()
        return await session.call_tool("read_file", {"path": path})

    with contextlib.suppress(BaseException):  # the server cuts this call off: expected
        with_session(url, work)


@pytest.mark.parametrize("entry", [["-m", "mcp_mesh_sdk.server"], ["-m", "mcp_mesh_sdk", "serve"]])
def test_bad_environment_exits_78_naming_the_variable(
    entry: list[str], agent_env: dict[str, str]
) -> None:
    env = {**os.environ, **agent_env, "MCP_MESH_PORT": "eighty", "HEALTH_INTERVAL": "-1"}
    done = subprocess.run([sys.executable, *entry], env=env, capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    assert done.returncode == 78
    assert "MCP_MESH_PORT: must be an integer from 1 to 65535, got 'eighty'" in done.stderr
    assert "HEALTH_INTERVAL" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert AGENT_TOKEN not in done.stderr + done.stdout


def test_port_in_use_is_a_clear_error(agent_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, **agent_env, "MCP_MESH_PORT": str(port)}
        done = subprocess.run([sys.executable, "-m", "mcp_mesh_sdk.server"], env=env,
                              capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 78
    assert f"MCP_MESH_PORT: cannot listen on 127.0.0.1:{port}: address already in use" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr
