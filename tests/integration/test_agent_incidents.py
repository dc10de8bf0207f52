"""The agent's own signals on a real process: client errors are counted as such and never alert
or open an incident; server errors make /health/detailed degraded, raise the CRITICAL alert and
open a P2 incident that `mcp-mesh-sdk incidents` lists.

Server errors are injected without any switch in the agent: once the agent runs, the test lowers
its RLIMIT_FSIZE (`prlimit`), so a write over that size in its own base directory fails with
EFBIG, as a full quota would. It works as root too (a resource limit binds root as well, where
permission bits would not), and Python ignores SIGXFSZ, so the write fails instead of the process.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    AGENT_TOKEN,
    REGISTRY_TOKEN,
    FakeRegistry,
    RunningAgent,
    request,
    wait_until,
)

pytestmark = pytest.mark.integration

MCP_HEADERS = {
    "Authorization": f"Bearer {AGENT_TOKEN}",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-06-18",
}
FILE_SIZE_LIMIT = 512 * 1024  # the agent's RLIMIT_FSIZE in the server-error test


def call_tool(agent: RunningAgent, number: int, tool: str, arguments: dict[str, Any]) -> Any:
    call = {
        "jsonrpc": "2.0",
        "id": number,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }
    reply = request(agent.mcp_url, method="POST", headers=MCP_HEADERS, body=call, timeout=30)
    assert reply.status == 200, reply.text
    return reply.json()["result"]


def listed_incidents(state_dir: Path, *extra: str) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-m", "mcp_mesh_sdk", "incidents", "--json", "--state-dir",
         str(state_dir), *extra],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)["incidents"]


def open_incidents(state_dir: Path) -> list[dict]:
    if not (state_dir / "incidents.jsonl").exists():
        return []
    return listed_incidents(state_dir, "--open")


def outcomes(agent: RunningAgent, operation: str) -> dict[str, float]:
    counters = json_metrics(agent)["counters"]
    return {
        outcome: counters[
            f"mcp_mesh_agent_operations_total{{operation={operation},outcome={outcome}}}"
        ]
        for outcome in ("ok", "client_error", "server_error")
    }


def json_metrics(agent: RunningAgent) -> dict[str, Any]:
    reply = agent.get("/metrics", headers={"Accept": "application/json"})
    assert reply.status == 200
    return dict(reply.json())


@pytest.fixture
def watched_env(agent_env: dict[str, str], fake_registry: FakeRegistry) -> dict[str, str]:
    """A registered agent (so its baseline health is `healthy`) checking incidents every 1 s."""
    Path(agent_env["MCP_MESH_STATE_DIR"]).mkdir()
    return {
        **agent_env,
        "MESH_REGISTRY_URL": fake_registry.url,
        "MCP_MESH_REGISTRY_TOKEN": REGISTRY_TOKEN,
        "MCP_MESH_INCIDENT_INTERVAL": "1",
    }


def healthy_and_registered(agent: RunningAgent) -> bool:
    return bool(agent.get("/health/detailed").json()["status"] == "healthy")


def test_missing_files_and_traversal_are_client_errors_with_no_alert_and_no_incident(
    watched_env: dict[str, str], start_agent: Callable[..., RunningAgent]
) -> None:
    state_dir = Path(watched_env["MCP_MESH_STATE_DIR"])
    agent = start_agent(watched_env)
    assert wait_until(lambda: healthy_and_registered(agent)), agent.get("/health/detailed").text
    for number in range(16):
        assert call_tool(agent, number, "read_file", {"path": f"missing-{number}.txt"})["isError"]
    for number in range(4):  # under the 5 attempts that block a source
        result = call_tool(agent, 100 + number, "read_file", {"path": f"../x{number}.txt"})
        assert result["isError"] and "refused" in result["content"][0]["text"]
    bad = call_tool(agent, 200, "read_file", {})  # no path: the SDK rejects the arguments
    assert bad["isError"]

    assert outcomes(agent, "read_file") == {"ok": 0, "client_error": 21, "server_error": 0}
    metrics = json_metrics(agent)
    errors = metrics["counters"]
    assert (
        errors["mcp_mesh_agent_operation_errors_total{error_type=not_found,operation=read_file}"]
        == 16
    )
    assert (
        errors["mcp_mesh_agent_operation_errors_total{error_type=refused,operation=read_file}"] == 4
    )
    assert (
        errors[
            "mcp_mesh_agent_operation_errors_total{error_type=bad_arguments,operation=read_file}"
        ]
        == 1
    )
    stats = metrics["operations"]["read_file"]
    assert stats["client_error_count"] == 21 and stats["server_error_count"] == 0
    assert stats["error_rate"] == 0.0 and stats["server_error_rate"] == 0.0
    assert metrics["alerts"] == []
    # The refusals are security events, from this source.
    summary = agent.get("/security/summary", headers={"Authorization": f"Bearer {AGENT_TOKEN}"})
    assert summary.json()["events_by_type"]["path_traversal_attempt"] == 4

    wait_until(lambda: False, timeout=2.5)  # two incident checks at least
    assert open_incidents(state_dir) == []
    detailed = agent.get("/health/detailed").json()
    assert detailed["status"] == "healthy", detailed["errors"]
    assert "ALERT" not in agent.service.log()


def test_twenty_percent_server_errors_degrade_health_alert_and_open_a_p2_incident(
    watched_env: dict[str, str], start_agent: Callable[..., RunningAgent]
) -> None:
    state_dir = Path(watched_env["MCP_MESH_STATE_DIR"])
    agent = start_agent(watched_env)
    assert wait_until(lambda: healthy_and_registered(agent)), agent.get("/health/detailed").text
    assert agent.service.process is not None
    resource.prlimit(agent.service.process.pid, resource.RLIMIT_FSIZE,
                     (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))  # fmt: skip
    big = "x" * (FILE_SIZE_LIMIT + 100 * 1024)  # allowed by MAX_FILE_SIZE, over the rlimit
    results = []
    for number in range(10):  # 8 small writes and 2 big ones: 20 % server errors
        content = big if number in (3, 7) else f"note {number}\n"
        results.append(call_tool(agent, number, "write_file",
                                 {"path": f"notes/n{number}.txt", "content": content}))  # fmt: skip
    assert [r["isError"] for r in results] == [n in (3, 7) for n in range(10)]
    assert "File too large" in results[3]["content"][0]["text"]
    assert not (agent.data / "notes" / "n3.txt").exists()
    assert sorted(p.name for p in (agent.data / "notes").iterdir()) == [
        f"n{n}.txt" for n in range(10) if n not in (3, 7)
    ]  # and no temporary file left behind

    assert outcomes(agent, "write_file") == {"ok": 8, "client_error": 0, "server_error": 2}
    metrics = json_metrics(agent)
    assert (
        metrics["counters"][
            "mcp_mesh_agent_operation_errors_total{error_type=no_space,operation=write_file}"
        ]
        == 2
    )
    assert metrics["operations"]["write_file"]["server_error_rate"] == pytest.approx(0.2)
    critical = [a for a in metrics["alerts"] if a["name"] == "high_error_rate"]
    assert [(a["severity"], a["metadata"]["operation"]) for a in critical] == [
        ("critical", "write_file")
    ]
    assert "CRITICAL ALERT: High error rate for write_file" in agent.service.log()

    code, detailed = (lambda r: (r.status, r.json()))(agent.get("/health/detailed"))
    assert code == 200 and detailed["status"] == "degraded"
    reason = "High error rate for write_file: 20.0% (threshold 5.0%) over the last 60 s"
    assert reason in detailed["errors"]
    assert detailed["checks"]["performance"]["reasons"] == [reason]
    # The load balancer's check does not follow performance; /health keeps its 200.
    assert agent.get("/ready").status == 200
    health = agent.get("/health")
    assert health.status == 200 and health.json()["status"] == "degraded"

    def p2_incident() -> list[dict]:
        return [i for i in open_incidents(state_dir) if i["title"] == "High Error Rate: write_file"]

    assert wait_until(p2_incident, timeout=15), agent.service.log()
    [incident] = p2_incident()
    assert incident["severity"] == "P2_High"
    assert incident["description"] == "Error rate for write_file is 20.0% (server errors)"
    # Further checks while the cause persists do not open the same incident again.
    wait_until(lambda: False, timeout=2.5)
    assert len(p2_incident()) == 1
