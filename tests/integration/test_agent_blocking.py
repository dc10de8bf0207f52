"""Blocks that cannot be turned on others, against a real agent behind a simulated proxy.

The proxy is this test on 127.0.0.1, trusted (MCP_MESH_TRUSTED_PROXIES=127.0.0.1): it names
its clients in X-Forwarded-For and appends the real one last, as HAProxy's `option forwardfor`
does. `mcp-mesh-sdk security list|unblock` run as an operator would, with the agent's env file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from conftest import AGENT_TOKEN, Reply, RunningAgent, request

pytestmark = pytest.mark.integration

THRESHOLD = 20
ATTACKER = "203.0.113.7"
CLIENT = "198.51.100.20"
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
MCP_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-06-18",
}


def through_proxy(agent: RunningAgent, forwarded: str | None, token: str) -> Reply:
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    return request(agent.mcp_url, method="POST", body=LIST_TOOLS, headers=headers)


def blocking_agent(
    agent_env: dict[str, str], start_agent: Callable[..., RunningAgent]
) -> RunningAgent:
    return start_agent(
        {
            **agent_env,
            "MCP_MESH_TRUSTED_PROXIES": "127.0.0.1",
            "MCP_MESH_SECURITY_THRESHOLD": str(THRESHOLD),
        }
    )


def flood(agent: RunningAgent, forwarded: str | None, times: int) -> list[int]:
    return [through_proxy(agent, forwarded, "wrong-token").status for _ in range(times)]


def test_a_wrong_token_flood_through_the_proxy_blocks_only_the_flooding_client(
    agent_env: dict[str, str], start_agent: Callable[..., RunningAgent]
) -> None:
    agent = blocking_agent(agent_env, start_agent)
    # The attacker also forges X-Forwarded-For to name the client; the proxy appends the
    # attacker's real address, and the agent believes only what its trusted proxy added.
    statuses = flood(agent, f"{CLIENT}, {ATTACKER}", THRESHOLD + 5)
    assert statuses == [401] * (THRESHOLD + 1) + [403] * 4

    assert through_proxy(agent, CLIENT, AGENT_TOKEN).status == 200  # the client works on
    assert through_proxy(agent, CLIENT, "wrong-token").status == 401  # and is not blocked
    assert through_proxy(agent, None, AGENT_TOKEN).status == 200  # nor is the proxy
    # The attacker's block refuses requests without a valid token; the token is the authority.
    assert through_proxy(agent, ATTACKER, AGENT_TOKEN).status == 200

    # The proxy's own address, flooding without X-Forwarded-For, is never blocked.
    assert flood(agent, None, 2 * THRESHOLD) == [401] * (2 * THRESHOLD)
    assert through_proxy(agent, None, AGENT_TOKEN).status == 200
    assert "trusted proxy 127.0.0.1 itself caused" in agent.service.log()

    assert agent.get("/ready").status == 200
    detailed = agent.get("/health/detailed")
    security = detailed.json()["checks"]["security"]
    assert (security["blocked_sources"], security["blocked"]) == (1, [ATTACKER])
    assert security["threshold"] == THRESHOLD
    assert AGENT_TOKEN not in detailed.text
    assert AGENT_TOKEN not in agent.service.log()


def sdk(*args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_mesh_sdk", "security", *args, "--env-file", str(env_file)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def write_env_file(path: Path, env: Mapping[str, str]) -> Path:
    path.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
    return path


def test_security_list_and_unblock_lift_a_block_at_once(
    agent_env: dict[str, str], start_agent: Callable[..., RunningAgent], tmp_path: Path
) -> None:
    agent = blocking_agent(agent_env, start_agent)
    env_file = write_env_file(
        tmp_path / "agent.env",
        {**agent_env, "MCP_MESH_TRUSTED_PROXIES": "127.0.0.1",
         "MCP_MESH_SECURITY_THRESHOLD": str(THRESHOLD)},
    )  # fmt: skip
    assert flood(agent, ATTACKER, THRESHOLD + 2)[-1] == 403

    listed = sdk("list", "--json", env_file=env_file)
    assert listed.returncode == 0, listed.stderr
    document = json.loads(listed.stdout)
    [block] = document["blocked"]
    assert (block["source"], block["scope"]) == (ATTACKER, "unauthenticated")
    assert document["window_minutes"] == 60 and document["threshold"] == THRESHOLD
    table = sdk("list", env_file=env_file)
    assert ATTACKER in table.stdout and "1 blocked" in table.stdout

    lifted = sdk("unblock", ATTACKER, env_file=env_file)
    assert (lifted.returncode, lifted.stdout.strip()) == (0, f"unblocked {ATTACKER}")
    assert flood(agent, ATTACKER, 1) == [401]  # at once, and counted afresh
    assert agent.get("/health/detailed").json()["checks"]["security"]["blocked"] == []
    again = sdk("unblock", ATTACKER, "--json", env_file=env_file)
    assert json.loads(again.stdout)["unblocked"] is False
    assert sdk("list", env_file=env_file).stdout.startswith("no blocked sources")

    for done in (listed, table, lifted, again):
        assert AGENT_TOKEN not in done.stdout + done.stderr


def test_blocks_are_lifted_only_from_the_agent_s_own_host(
    agent_env: dict[str, str], start_agent: Callable[..., RunningAgent]
) -> None:
    agent = blocking_agent(agent_env, start_agent)
    flood(agent, ATTACKER, THRESHOLD + 1)
    token = {"Authorization": f"Bearer {AGENT_TOKEN}"}
    url = agent.base_url + f"/security/blocks?source={ATTACKER}"
    forwarded = request(url, method="DELETE", headers={**token, "X-Forwarded-For": CLIENT})
    assert forwarded.status == 403  # a token holder behind the proxy: not this host
    assert request(url, method="DELETE").status == 401
    assert agent.get("/security/blocks", headers=token).json()["blocked"][0]["source"] == ATTACKER
    assert request(url, method="DELETE", headers=token).json()["unblocked"] is True


def test_security_cli_errors_are_clear_and_print_no_token(
    agent_env: dict[str, str], tmp_path: Path
) -> None:
    nobody = write_env_file(tmp_path / "agent.env", agent_env)  # no agent runs on its port
    done = sdk("list", env_file=nobody)
    assert done.returncode == 2
    assert "did not answer" in done.stderr and "Traceback" not in done.stderr
    no_token = {k: v for k, v in agent_env.items() if k != "MCP_MESH_TOKEN"}
    done = sdk("list", env_file=write_env_file(tmp_path / "no-token.env", no_token))
    assert done.returncode == 78 and "MCP_MESH_TOKEN: not set" in done.stderr
    done = sdk("unblock", "bad source", env_file=nobody)
    assert done.returncode == 2 and "not an address" in done.stderr
    for output in (done.stdout, done.stderr):
        assert AGENT_TOKEN not in output
