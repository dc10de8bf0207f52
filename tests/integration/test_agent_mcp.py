"""The real agent over MCP, driven by the official client (streamable HTTP, httpx2)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx2
import pytest
from conftest import AGENT_TOKEN, RunningAgent, request
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration
T = TypeVar("T")


def with_session(
    url: str,
    work: Callable[[ClientSession], Awaitable[T]],
    token: str | None = AGENT_TOKEN,
    statuses: list[int] | None = None,
) -> T:
    """Run `work` in an initialized MCP session; `statuses` collects every HTTP status seen."""

    async def record(response: httpx2.Response) -> None:
        if statuses is not None:
            statuses.append(response.status_code)

    async def main() -> T:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        http_client = create_mcp_http_client(headers=headers)
        http_client.event_hooks["response"].append(record)
        async with (
            http_client,
            streamable_http_client(url, http_client=http_client) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await work(session)

    return asyncio.run(main())


def call(agent: RunningAgent, tool: str, **arguments: Any) -> Any:
    async def work(session: ClientSession) -> Any:
        return await session.call_tool(tool, arguments)

    return with_session(agent.mcp_url, work)


def metric(agent: RunningAgent, name: str, **labels: str) -> float:
    text = agent.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_lists_the_four_tools(agent: RunningAgent) -> None:
    async def work(session: ClientSession) -> list[str]:
        return sorted(tool.name for tool in (await session.list_tools()).tools)

    assert with_session(agent.mcp_url, work) == [
        "file_info", "list_directory", "read_file", "write_file",
    ]  # fmt: skip


def test_writes_then_reads_a_file(agent: RunningAgent) -> None:
    async def work(session: ClientSession) -> tuple[Any, Any, Any]:
        written = await session.call_tool(
            "write_file", {"path": "notes/today.txt", "content": "héllo mesh\n"}
        )
        read = await session.call_tool("read_file", {"path": "notes/today.txt"})
        listing = await session.call_tool("list_directory", {"path": "notes"})
        return written, read, listing

    written, read, listing = with_session(agent.mcp_url, work)
    assert not written.is_error
    assert written.structured_content["bytes_written"] == len("héllo mesh\n".encode())
    assert not read.is_error and read.content[0].text == "héllo mesh\n"
    assert (agent.data / "notes" / "today.txt").read_text() == "héllo mesh\n"
    assert listing.structured_content["entries"] == [
        {"name": "today.txt", "type": "file", "size": 12}
    ]
    info = call(agent, "file_info", path="notes/today.txt")
    assert info.structured_content["size"] == 12
    assert metric(agent, "mcp_mesh_agent_operations_total", operation="write_file",
                  outcome="ok") == 1  # fmt: skip


def test_without_the_token_mcp_answers_401_and_records_the_event(agent: RunningAgent) -> None:
    statuses: list[int] = []
    with pytest.raises(BaseExceptionGroup):  # the client turns the 401 into an MCPError
        with_session(agent.mcp_url, lambda session: session.list_tools(), None, statuses)
    assert statuses == [401]
    raw = request(agent.mcp_url, method="POST", body={"jsonrpc": "2.0", "id": 1,
                                                       "method": "tools/list"})  # fmt: skip
    assert raw.status == 401
    assert raw.headers["www-authenticate"].startswith("Bearer")
    wrong = request(agent.mcp_url, method="POST", body={}, headers={"Authorization": "Bearer no"})
    assert wrong.status == 401
    assert metric(agent, "mcp_mesh_agent_security_events_total",
                  event_type="unauthorized_access") >= 3  # fmt: skip


def test_traversal_is_refused_and_counted(agent: RunningAgent, tmp_path) -> None:
    secret = tmp_path / "outside.txt"
    secret.write_text("not yours")
    os.symlink(secret, agent.data / "escape.txt")
    for path in ("../outside.txt", str(secret), "escape.txt"):
        result = call(agent, "read_file", path=path)
        assert result.is_error, path
        assert "refused" in result.content[0].text
        assert "not yours" not in result.content[0].text
    refused_extension = call(agent, "write_file", path="run.sh", content="echo hi")
    assert refused_extension.is_error and "allowed extension" in refused_extension.content[0].text
    assert not (agent.data / "run.sh").exists()
    assert metric(agent, "mcp_mesh_agent_security_events_total",
                  event_type="path_traversal_attempt") == 3  # fmt: skip
    assert metric(agent, "mcp_mesh_agent_operation_errors_total", operation="read_file",
                  error_type="refused") == 3  # fmt: skip
    assert metric(agent, "mcp_mesh_agent_operations_total", operation="read_file",
                  outcome="client_error") == 3  # fmt: skip
    assert metric(agent, "mcp_mesh_agent_operations_total", operation="read_file",
                  outcome="server_error") == 0  # fmt: skip
    summary = agent.get("/security/summary", headers={"Authorization": f"Bearer {AGENT_TOKEN}"})
    assert summary.json()["events_by_type"]["path_traversal_attempt"] == 3
    assert summary.json()["top_sources"] == {"127.0.0.1": 4}


def test_a_source_is_blocked_after_more_than_five_traversal_attempts(
    agent_env, start_agent
) -> None:
    # Loopback is a trusted proxy by default, and a trusted proxy's own address is never
    # blocked: here the test client is an ordinary client.
    agent = start_agent({**agent_env, "MCP_MESH_TRUSTED_PROXIES": "192.0.2.1"})

    async def attempts(session: ClientSession) -> list[bool]:
        return [
            (await session.call_tool("read_file", {"path": f"../x{n}.txt"})).is_error
            for n in range(6)
        ]

    assert with_session(agent.mcp_url, attempts) == [True] * 6
    blocked = request(agent.mcp_url, method="POST", body={},
                      headers={"Authorization": f"Bearer {AGENT_TOKEN}"})  # fmt: skip
    assert blocked.status == 403
    assert agent.get("/health").status == 200  # probes stay open for the load balancer
    assert metric(agent, "mcp_mesh_agent_blocked_sources") == 1


def test_called_by_host_name_not_only_by_address(agent: RunningAgent) -> None:
    """Host-header protection is on, with the agent's own names allowed (no 421)."""
    port = agent.base_url.rsplit(":", 1)[1]
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {
        "Authorization": f"Bearer {AGENT_TOKEN}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18",
    }
    for host in (socket.gethostname(), f"localhost:{port}", f"127.0.0.1:{port}"):
        reply = request(agent.mcp_url, method="POST", body=body, headers={**headers, "Host": host})
        assert reply.status == 200, (host, reply.text)
    foreign = request(agent.mcp_url, method="POST", body=body,
                      headers={**headers, "Host": "attacker.example"})  # fmt: skip
    assert foreign.status == 421


def test_a_call_made_while_the_sdk_still_loads_waits_and_succeeds(agent_env, start_agent) -> None:
    agent = start_agent(agent_env, wait_path="/livez")  # listener up; the SDK loads meanwhile
    (agent.data / "early.txt").write_text("early bird")
    result = call(agent, "read_file", path="early.txt")
    assert not result.is_error and result.content[0].text == "early bird"
