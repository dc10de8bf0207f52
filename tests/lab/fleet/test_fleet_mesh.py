"""The deployed mesh answers: agents ready, registered with the deployed version, behind the LB."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

# The load balancer picks at random by weight (mesh_loadbalancer_balance): an agent that has
# not answered after 300 requests gets no traffic. The test stops once every agent answered.
MAX_REQUESTS_THROUGH_LB = 300


def get(
    url: str, context: ssl.SSLContext | None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        return response.status, dict(response.headers), response.read()


def post_json(
    url: str, body: dict[str, Any], token: str, context: ssl.SSLContext | None
) -> tuple[dict[str, str], Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        },
    )
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        return dict(response.headers), json.loads(response.read())


def test_every_agent_is_ready(fleet: Any, lab_agent_name: str) -> None:
    status, _, _ = get(fleet.agent_url(lab_agent_name, "/ready"), fleet.ssl_context)
    assert status == 200


def test_registry_lists_every_agent_healthy_with_the_deployed_version(
    fleet: Any, lab_agent_name: str
) -> None:
    agents = {agent["name"]: agent for agent in fleet.registry_agents(status="healthy")}
    assert lab_agent_name in agents
    assert agents[lab_agent_name]["version"] == fleet.version
    assert agents[lab_agent_name]["status"] == "healthy"
    assert agents[lab_agent_name]["host"] == fleet.lab.hosts[lab_agent_name]


def test_the_registry_lists_nothing_without_its_token(fleet: Any) -> None:
    try:
        get(fleet.registry_url("/agents"), fleet.ssl_context)
    except urllib.error.HTTPError as refused:
        assert refused.code == 401
    else:
        raise AssertionError("the registry listed its agents without a token")


def test_requests_through_the_load_balancer_reach_every_agent(fleet: Any) -> None:
    agents = set(fleet.lab.groups["agents"])
    served_by: set[str | None] = set()
    for _ in range(MAX_REQUESTS_THROUGH_LB):
        status, headers, _ = get(fleet.lb_url("/health"), fleet.ssl_context)
        assert status == 200
        served_by.add(headers.get("x-mesh-server") or headers.get("X-Mesh-Server"))
        if served_by >= agents:
            break
    assert served_by == agents


def call_tool(
    fleet: Any, url: str, token: str, name: str, arguments: dict[str, Any]
) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call"}
    body["params"] = {"name": name, "arguments": arguments}
    _, answer = post_json(url, body, token, fleet.ssl_context)
    result: dict[str, Any] = answer["result"]
    assert not result.get("isError"), f"{name} failed: {result}"
    return result


def test_file_tools_work_in_base_directory_under_the_hardened_unit(
    fleet: Any, lab_agent_name: str
) -> None:
    token = fleet.tokens["agent"]
    url = fleet.agent_url(lab_agent_name, "/mcp")
    probe = {"path": "fleet/probe.txt", "content": lab_agent_name}
    call_tool(fleet, url, token, "write_file", probe)
    read = call_tool(fleet, url, token, "read_file", {"path": "fleet/probe.txt"})
    assert lab_agent_name in json.dumps(read), read
    call_tool(fleet, url, token, "file_info", {"path": "fleet/probe.txt"})


def test_mcp_tools_are_listed_through_the_load_balancer(fleet: Any) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    _, answer = post_json(fleet.lb_url("/mcp"), body, fleet.tokens["agent"], fleet.ssl_context)
    names = {tool["name"] for tool in answer["result"]["tools"]}
    assert {"read_file", "write_file", "list_directory", "file_info"} <= names


def test_mcp_without_the_token_is_refused(fleet: Any) -> None:
    request = urllib.request.Request(
        fleet.lb_url("/mcp"),
        data=b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        fleet.urlopen(request)
    except urllib.error.HTTPError as exc:
        assert exc.code == 401
    else:
        raise AssertionError("/mcp answered without a token")


def test_psutil_and_file_checks_work_inside_the_sandbox(fleet: Any, lab_agent_name: str) -> None:
    """ProtectProc/ProtectSystem/PrivateUsers leave psutil and BASE_DIRECTORY usable."""
    _, _, body = get(fleet.agent_url(lab_agent_name, "/health/detailed"), fleet.ssl_context)
    checks = json.loads(body)["checks"]
    assert checks["system"]["memory_percent"] > 0
    assert checks["system"]["available_memory_mb"] > 0
    files = checks["file_operations"]
    assert (files["status"], files["readable"], files["writable"]) == ("ok", True, True)
