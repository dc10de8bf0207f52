"""The agent opens incidents on its own metrics, and `mcp-mesh-sdk incidents` lists them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import AGENT_TOKEN, RunningAgent, request, wait_until

pytestmark = pytest.mark.integration

MCP_HEADERS = {
    "Authorization": f"Bearer {AGENT_TOKEN}",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-06-18",
}


def read_missing_file(agent: RunningAgent, number: int) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": number,
        "method": "tools/call",
        "params": {"name": "read_file", "arguments": {"path": f"missing-{number}.txt"}},
    }
    reply = request(agent.mcp_url, method="POST", headers=MCP_HEADERS, body=call)
    assert reply.status == 200, reply.text
    assert reply.json()["result"]["isError"] is True


def listed_incidents(state_dir: Path, *extra: str) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-m", "mcp_mesh_sdk", "incidents", "--json", "--state-dir",
         str(state_dir), *extra],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)["incidents"]


def test_failing_operations_open_one_incident_that_the_command_lists(
    agent_env: dict[str, str], start_agent: Callable[..., RunningAgent]
) -> None:
    agent_env["MCP_MESH_INCIDENT_INTERVAL"] = "1"
    state_dir = Path(agent_env["MCP_MESH_STATE_DIR"])
    state_dir.mkdir()
    agent = start_agent(agent_env)
    for number in range(4):
        read_missing_file(agent, number)

    def error_rate_incident() -> list[dict]:
        if not (state_dir / "incidents.jsonl").exists():
            return []
        return [i for i in listed_incidents(state_dir, "--open") if "read_file" in i["title"]]

    assert wait_until(error_rate_incident, timeout=15), agent.service.log()
    opened = error_rate_incident()
    assert opened[0]["severity"].startswith("P2")
    assert opened[0]["title"] == "High Error Rate: read_file"
    # Further checks while the cause persists do not open the same incident again.
    wait_until(lambda: False, timeout=2.5)
    assert len(error_rate_incident()) == 1
