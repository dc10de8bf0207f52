"""`mcp-mesh-sdk lb` on the load balancer host, against the real HAProxy the role configured."""

from __future__ import annotations

import json
import time
from typing import Any

from mcp_mesh_sdk.constants import AGENT_UNIT, CLI
from tests.lab.fleet.polling import wait_for

LB_COMMAND = f"{CLI} lb"


AGENTS_BACKEND = "mcp_mesh_agents"  # a lab with registry replicas lists their backend too


def status(host: Any) -> dict[str, str]:
    data = json.loads(host.check_output(f"{LB_COMMAND} status --json"))
    return {s["server"]: s["status"] for s in data["servers"] if s["backend"] == AGENTS_BACKEND}


def test_status_lists_every_agent_up(fleet: Any, lab_host: Any) -> None:
    lb = lab_host(fleet.lab.groups["loadbalancer"][0])
    assert status(lb) == dict.fromkeys(fleet.lab.groups["agents"], "UP")


def test_drain_then_enable_takes_an_agent_out_and_back(fleet: Any, lab_host: Any) -> None:
    lb = lab_host(fleet.lab.groups["loadbalancer"][0])
    agent = fleet.lab.groups["agents"][-1]
    try:
        drained = json.loads(lb.check_output(f"{LB_COMMAND} drain {agent} --wait 10 --json"))
        assert drained["drained"] is True and drained["status"] == "MAINT"
        assert status(lb)[agent] == "MAINT"
    finally:
        enabled = lb.run(f"{LB_COMMAND} enable {agent} --wait-up 30 --json")
    assert enabled.rc == 0, enabled.stderr
    assert json.loads(enabled.stdout)["status"] == "UP"
    assert status(lb)[agent] == "UP"


def test_an_unknown_server_is_a_clear_error(fleet: Any, lab_host: Any) -> None:
    lb = lab_host(fleet.lab.groups["loadbalancer"][0])
    result = lb.run(f"{LB_COMMAND} drain no-such-agent")
    assert result.rc == 2
    assert "no server 'no-such-agent'" in result.stderr and "Traceback" not in result.stderr


def served_by(fleet: Any, requests: int) -> set[str]:
    seen = set()
    for _ in range(requests):
        with fleet.urlopen(fleet.lb_url("/health")) as answer:
            seen.add(answer.headers["X-Mesh-Server"])
    return seen


def wait_for_state(lb: Any, state: str, agents: list[str], seconds: float = 60) -> None:
    wait_for(
        f"every agent {state} in the load balancer",
        lambda: all(status(lb).get(agent) == state for agent in agents),
        seconds,
        step=0.5,
    )


def test_after_every_agent_was_down_traffic_reaches_every_agent_again(
    fleet: Any, lab_host: Any
) -> None:
    """A fleet back from a full outage is balanced at once. HAProxy 2.6's roundrobin sent every
    request to the last agent back for thousands of requests (weight 100 each)."""
    lb = lab_host(fleet.lab.groups["loadbalancer"][0])
    agents = fleet.lab.groups["agents"]
    try:
        for agent in agents:
            assert lab_host(agent).run(f"systemctl stop {AGENT_UNIT}").rc == 0
        wait_for_state(lb, "DOWN", agents)
        for agent in agents:  # back one at a time, as after a power cut
            assert lab_host(agent).run(f"systemctl start {AGENT_UNIT}").rc == 0
            time.sleep(2)
        wait_for_state(lb, "UP", agents)
        assert served_by(fleet, 60) == set(agents)
    finally:
        for agent in agents:
            lab_host(agent).run(f"systemctl start {AGENT_UNIT}")
        wait_for_state(lb, "UP", agents)
