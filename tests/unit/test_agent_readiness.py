"""Readiness decisions, what systemd is told, and the retry backoff of the registry client."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from mcp_mesh_sdk.agent.lifecycle import Lifecycle
from mcp_mesh_sdk.agent.registry_client import backoff_delays
from mcp_mesh_sdk.config import load_agent_config
from mcp_mesh_sdk.serving.systemd import systemd_watchdog


def lifecycle(*, fallback: bool = True, registered: bool = False, errors=()) -> Lifecycle:
    state = Lifecycle(
        fallback_mode=fallback,
        registry_problem=lambda: None if registered else "not_registered",
        critical_errors=lambda: list(errors),
    )
    return state


def serving(state: Lifecycle) -> Lifecycle:
    state.mark_listening()
    state.engine_loaded = True
    return state


def test_starting_until_the_socket_is_bound() -> None:
    state = lifecycle()
    assert state.readiness().reason == "starting"
    state.mark_listening()  # the MCP engine may still load: /mcp calls wait for it
    assert state.readiness().ready


def test_without_fallback_ready_needs_registration() -> None:
    assert serving(lifecycle(fallback=False)).readiness().reason == "not_registered"
    assert serving(lifecycle(fallback=False, registered=True)).readiness().ready
    assert serving(lifecycle(fallback=True)).readiness().ready


def test_broken_file_operations_make_it_unhealthy_with_the_reason() -> None:
    readiness = serving(lifecycle(errors=["BASE_DIRECTORY /x does not exist"])).readiness()
    assert readiness.describe() == {
        "status": "not_ready",
        "reason": "unhealthy",
        "errors": ["BASE_DIRECTORY /x does not exist"],
    }


def test_draining_wins_over_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    state = serving(lifecycle(registered=True))
    state.begin_drain()
    assert state.readiness().reason == "draining"
    assert state.phase == "draining"


@pytest.fixture
def notify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


def test_ready_is_sent_once_and_only_when_the_agent_may_serve(notify: socket.socket) -> None:
    async def scenario() -> list[list[str]]:
        state = lifecycle(fallback=False)
        task = asyncio.create_task(state.systemd.run())
        steps = []
        await asyncio.sleep(0.01)
        steps.append(received(notify))
        state.mark_listening()
        state.changed()
        await asyncio.sleep(0.01)
        steps.append(received(notify))
        state._registry_problem = lambda: None
        state.changed()
        await asyncio.sleep(0.01)
        steps.append(received(notify))
        state.changed()
        await asyncio.sleep(0.01)
        steps.append(received(notify))
        task.cancel()
        return steps

    steps = asyncio.run(scenario())
    sent = [line for step in steps for message in step for line in message.splitlines()]
    assert sent.count("READY=1") == 1
    assert "READY=1" in steps[2][0]  # only once registered (FALLBACK_MODE=false)
    assert "STATUS=not ready (not_registered)" in sent
    assert steps[3] == []  # nothing new to say


def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert systemd_watchdog() is None
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    task = systemd_watchdog()
    assert task is not None and task.interval == 2.0


def test_backoff_grows_by_the_factor_and_stops_at_the_ceiling() -> None:
    config = load_agent_config(
        {
            "MCP_MESH_TOKEN": "token-long-enough-123456",
            "RETRY_INITIAL_DELAY": "1000",
            "RETRY_MAX_DELAY": "5000",
            "RETRY_BACKOFF": "2",
        }
    )
    delay = backoff_delays(config)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 5.0), (30, 5.0), (500, 5.0)]:
        waited = delay(attempt)
        assert 0.8 * ceiling <= waited <= ceiling, (attempt, waited)


def test_registry_standing_names_what_is_wrong() -> None:
    from mcp_mesh_sdk.agent.registry_client import RegistryStatus

    status = RegistryStatus()
    assert status.problem() == "not_registered"
    status.registered, status.reachable = True, False
    assert status.problem() == "registry_unreachable"
    status.reachable = True
    assert status.problem() is None
    state = serving(lifecycle(fallback=False))
    state._registry_problem = lambda: "registry_unreachable"
    assert state.readiness().reason == "registry_unreachable"
