"""A token per client on a real agent: who is named where, revocation under load, the
deprecated shared token (`agent.clients`)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import AGENT_TOKEN, Reply, RunningAgent, request, wait_until

pytestmark = pytest.mark.integration

ALICE = "alice-token-0123456789abcdef0123456789"
BOB = "bob-token-0123456789abcdef0123456789abcd"
HEADERS = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}


def write_clients(path: Path, **tokens: str) -> None:
    """As the role writes it: a new file renamed over the live one."""
    hashes = {name: hashlib.sha256(token.encode()).hexdigest() for name, token in tokens.items()}
    lines = "".join(f"{name} {digest}\n" for name, digest in hashes.items())
    new = path.with_name(path.name + ".new")
    new.write_text("# written by the test\n" + lines)
    os.replace(new, path)


def list_directory(agent: RunningAgent, token: str | None, request_id: str = "") -> Reply:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "list_directory", "arguments": {"path": "."}}}  # fmt: skip
    headers = {**HEADERS, "X-Request-ID": request_id} if request_id else dict(HEADERS)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return request(agent.mcp_url, method="POST", body=body, headers=headers)


def log_lines(agent: RunningAgent) -> list[dict[str, Any]]:
    return [json.loads(line) for line in agent.service.log().splitlines() if line.startswith("{")]


@pytest.fixture
def clients_agent(
    agent_env: dict[str, str], start_agent: Callable[..., RunningAgent], tmp_path: Path
) -> RunningAgent:
    clients = tmp_path / "agent-clients"
    write_clients(clients, alice=ALICE, bob=BOB)
    return start_agent(
        {**agent_env, "MCP_MESH_CLIENTS_FILE": str(clients),
         "MCP_MESH_AUDIT_LOG": str(tmp_path / "audit.log")}
    )  # fmt: skip


def audit_records(path: Path) -> list[dict[str, Any]]:
    """The agent's audit file (MCP_MESH_AUDIT_LOG), one JSON record per tool call."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_clients_are_named_in_the_audit_log_and_a_wrong_token_is_anonymous(
    clients_agent: RunningAgent, tmp_path: Path
) -> None:
    assert list_directory(clients_agent, ALICE, "call-alice").status == 200
    assert list_directory(clients_agent, BOB, "call-bob").status == 200
    assert list_directory(clients_agent, AGENT_TOKEN, "call-operator").status == 200
    refused = list_directory(clients_agent, "not-a-client-token-0123456789", "call-wrong")
    assert refused.status == 401
    audit = {
        record["request_id"]: record["client"] for record in audit_records(tmp_path / "audit.log")
    }
    assert audit == {"call-alice": "alice", "call-bob": "bob", "call-operator": "operator"}
    lines = log_lines(clients_agent)
    # The audit file, not the service log: calls at full load must not crowd the journal.
    assert not [line for line in lines if line["logger"] == "mcp_mesh_sdk.agent.audit"]
    event = next(line for line in lines if line.get("request_id") == "call-wrong")
    assert event["event_type"] == "unauthorized_access"
    assert event["user_id"] == "anonymous"
    summary = clients_agent.get(
        "/security/summary", headers={"Authorization": f"Bearer {ALICE}"}
    ).json()
    assert summary["recent_events"][-1]["user_id"] == "anonymous"
    log = clients_agent.service.log()
    assert ALICE not in log and BOB not in log and AGENT_TOKEN not in log


def test_a_refused_file_call_is_a_security_event_of_the_client(
    clients_agent: RunningAgent,
) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "read_file", "arguments": {"path": "../../etc/passwd"}}}  # fmt: skip
    headers = {**HEADERS, "Authorization": f"Bearer {BOB}", "X-Request-ID": "bob-escape"}
    assert request(clients_agent.mcp_url, method="POST", body=body, headers=headers).status == 200
    event = next(
        line
        for line in log_lines(clients_agent)
        if line.get("request_id") == "bob-escape" and "event_type" in line
    )
    assert event["user_id"] == "bob"
    assert event["client"] == "bob"


def test_a_revoked_client_is_refused_within_two_seconds_while_the_others_never_fail(
    clients_agent: RunningAgent, tmp_path: Path
) -> None:
    stop = threading.Event()
    statuses: list[int] = []

    def alice_loop() -> None:
        while not stop.is_set():
            try:
                statuses.append(list_directory(clients_agent, ALICE).status)
            except OSError:
                statuses.append(-1)

    loop = threading.Thread(target=alice_loop)
    loop.start()
    try:
        assert wait_until(lambda: len(statuses) >= 20)
        assert list_directory(clients_agent, BOB).status == 200
        write_clients(tmp_path / "agent-clients", alice=ALICE)
        revoked_at = time.monotonic()
        assert wait_until(lambda: list_directory(clients_agent, BOB).status == 401, timeout=5)
        took = time.monotonic() - revoked_at
        time.sleep(0.5)
    finally:
        stop.set()
        loop.join()
    assert took < 2.0
    assert len(statuses) > 40
    assert [status for status in statuses if status != 200] == []
    assert any("revoked bob" in line["message"] for line in log_lines(clients_agent))


def test_a_broken_clients_file_keeps_the_last_good_set(
    clients_agent: RunningAgent, tmp_path: Path
) -> None:
    (tmp_path / "agent-clients").write_text(f"carol {ALICE}\n")  # a token, not its hash

    def refused_file_logged() -> bool:  # the file is looked at on a request
        assert list_directory(clients_agent, ALICE).status == 200
        assert list_directory(clients_agent, BOB).status == 200
        return any("not used" in line["message"] for line in log_lines(clients_agent))

    assert wait_until(refused_file_logged, timeout=5)
    assert ALICE not in clients_agent.service.log()


def test_the_deprecated_shared_token_still_works_as_the_default_client_and_warns(
    agent: RunningAgent,
) -> None:
    assert list_directory(agent, AGENT_TOKEN, "shared").status == 200
    lines = log_lines(agent)
    audit = next(line for line in lines if line.get("request_id") == "shared")
    assert audit["client"] == "default"
    assert any(
        "MCP_MESH_CLIENTS_FILE" in line["message"] and "deprecated" in line["message"]
        for line in lines
    )
