"""/health/detailed says `degraded` with the reason while a seed alert threshold is crossed over
the recent window; /ready does not follow performance; /health keeps its status code."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_mesh_sdk.agent.monitoring import PerformanceMonitor
from mcp_mesh_sdk.agent.service import Agent
from mcp_mesh_sdk.config import load_agent_config


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def agent(tmp_path: Path, clock: Clock) -> Agent:
    data = tmp_path / "data"
    data.mkdir()
    config = load_agent_config(
        {
            "MCP_MESH_TOKEN": "unit-token-0123456789abcdef",
            "BASE_DIRECTORY": str(data),
            "MESH_REGISTRY_URL": "http://127.0.0.1:9",
            "FALLBACK_MODE": "true",
            "MCP_MESH_STATE_DIR": str(tmp_path / "state"),
        }
    )
    agent = Agent(config)
    agent.performance = PerformanceMonitor(clock=clock)
    agent.lifecycle.mark_listening()
    agent.lifecycle.engine_loaded = True
    # A registered agent with a healthy host: only performance can make it degraded here.
    agent.registry.status.registered = True
    agent.registry.status.last_error = None
    agent.system.sample()
    agent.system.last = agent.system.last.__class__(
        **{**agent.system.last.as_dict(), "cpu_percent": 1.0, "memory_percent": 10.0,
           "disk_usage_percent": 10.0}
    )  # fmt: skip
    return agent


def calls(agent: Agent, count: int, outcome: str = "ok", seconds: float = 0.01) -> None:
    for _ in range(count):
        agent.performance.record("write_file", seconds, outcome=outcome)


def test_twenty_percent_server_errors_make_it_degraded_with_the_reason(
    agent: Agent, clock: Clock
) -> None:
    calls(agent, 8)
    calls(agent, 2, outcome="server_error")
    code, body = agent.detailed_health()
    assert code == 200
    assert body["status"] == "degraded"
    reason = "High error rate for write_file: 20.0% (threshold 5.0%) over the last 60 s"
    assert reason in body["errors"]
    performance = body["checks"]["performance"]
    assert performance["status"] == "degraded" and performance["reasons"] == [reason]
    assert performance["operations"]["write_file"]["server_error_rate"] == 0.2
    # /ready stays 200: performance never takes the agent out of the load balancer.
    assert agent.readiness()[0] == 200
    # /health says degraded in its body, with the same status code as before.
    health_code, health = agent.health()
    assert health_code == 200 and health["status"] == "degraded"

    clock.now += 61  # the burst leaves the window
    code, body = agent.detailed_health()
    assert body["status"] == "healthy", body["errors"]
    assert body["checks"]["performance"]["status"] == "ok"
    assert body["errors"] == []


def test_client_errors_do_not_make_it_degraded(agent: Agent) -> None:
    calls(agent, 40, outcome="client_error")
    calls(agent, 10)
    code, body = agent.detailed_health()
    assert (code, body["status"], body["errors"]) == (200, "healthy", [])
    assert body["checks"]["performance"]["operations"]["write_file"]["client_error_rate"] == 0.8


def test_slow_average_and_p95_are_named(agent: Agent) -> None:
    calls(agent, 10, seconds=1.5)
    for _ in range(19):
        agent.performance.record("file_info", 0.01)
    agent.performance.record("file_info", 3.0)  # p95 of 20 calls is the 19th: still fast
    agent.performance.record("file_info", 3.0)  # now 2 of 21: p95 is 3000 ms
    _, body = agent.detailed_health()
    assert body["status"] == "degraded"
    assert body["checks"]["performance"]["reasons"] == [
        "High p95 response time for file_info: 3000.0 ms (threshold 2000.0 ms) over the last 60 s",
        "High average response time for write_file: 1500.0 ms (threshold 1000.0 ms) "
        "over the last 60 s",
    ]


def test_every_tool_has_all_three_outcome_series_from_the_start(agent: Agent) -> None:
    text = agent.metrics_text().decode()
    for tool in ("read_file", "write_file", "list_directory", "file_info"):
        for outcome in ("ok", "client_error", "server_error"):
            series = f'mcp_mesh_agent_operations_total{{operation="{tool}",outcome="{outcome}"}}'
            assert series + " 0.0" in text
