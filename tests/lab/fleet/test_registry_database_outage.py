"""The registry's PostgreSQL away for 30 s on a lab with a database host (db1).

What an operator sees: the agents keep serving (fallback mode), the registry says 503 with a
reason instead of a traceback, and every agent is back on the registry's list, heartbeating,
once the database returns. Skipped on a lab without a `database` group (SQLite registry).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import pytest

OUTAGE_SECONDS = 30
POSTGRES_UNIT = "postgresql@15-main"
# The agents heartbeat every 30 s (the lab's default): after the outage, each one is back
# within one interval plus its retries' backoff.
RECOVERY_SECONDS = 75


@pytest.fixture
def database_host(fleet: Any, lab_host: Any) -> Any:
    members = fleet.lab.groups.get("database") or []
    if not members:
        pytest.skip("this lab has no database host (`lab up --database`): the registry is SQLite")
    return lab_host(members[0])


def answer(fleet: Any, url: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with fleet.urlopen(urllib.request.Request(url, headers=headers)) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"{}")


def served_through_the_lb(fleet: Any) -> int:
    """An MCP call through the load balancer -> its HTTP status."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
    request = urllib.request.Request(
        fleet.lb_url("/mcp"),
        data=body,
        headers={
            "Authorization": f"Bearer {fleet.load_tokens[0]}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        },
    )
    with fleet.urlopen(request) as response:
        return int(response.status)


def test_losing_the_database_for_30_s_keeps_agents_serving_and_all_come_back(
    fleet: Any, database_host: Any, lab_host: Any
) -> None:
    agents = fleet.lab.groups["agents"]
    registry_token = fleet.tokens["registry"]
    stopped = database_host.run(f"systemctl stop {POSTGRES_UNIT}")
    assert stopped.rc == 0, stopped.stderr
    down_at = datetime.now(UTC)
    try:
        deadline = time.monotonic() + OUTAGE_SECONDS
        seen_503 = False
        while time.monotonic() < deadline:
            status, body = answer(fleet, fleet.registry_url("/agents"), registry_token)
            if status == 503:
                seen_503 = True
                assert body["error"] == "registry database unavailable", body
                assert body.get("reason"), body
                assert "Traceback" not in json.dumps(body)
            ready, _ = answer(fleet, fleet.registry_url("/ready"))
            assert ready in (200, 503)
            for name in agents:  # fallback mode: the agents serve without the registry
                assert answer(fleet, fleet.agent_url(name, "/ready"))[0] == 200, name
            assert served_through_the_lb(fleet) == 200
            time.sleep(3)
        assert seen_503, "the registry never said its database was unavailable"
    finally:
        started = database_host.run(f"systemctl start {POSTGRES_UNIT}")
        assert started.rc == 0, started.stderr

    back = time.monotonic()
    while True:
        status, body = answer(fleet, fleet.registry_url("/agents"), registry_token)
        listed = body.get("agents", []) if status == 200 else []
        fresh = {
            agent["name"]
            for agent in listed
            if agent["status"] == "healthy"
            and datetime.fromisoformat(agent["last_heartbeat"]) > down_at
        }
        names = [agent["name"] for agent in listed]
        if fresh >= set(agents):
            break
        assert time.monotonic() < back + RECOVERY_SECONDS, (status, body)
        time.sleep(2)
    assert sorted(names) == sorted(set(names)), "an agent is listed twice"
    for name in fleet.lab.groups["registry"]:
        journal = lab_host(name).run(
            "journalctl -u mcp-mesh-registry --since '-5 min' --no-pager -o cat"
        )
        assert "Traceback" not in journal.stdout, name
        assert fleet.tokens["database"] not in journal.stdout, f"{name} logged the password"
