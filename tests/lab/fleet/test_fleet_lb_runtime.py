"""`mcp-mesh-sdk lb` on the load balancer host, against the real HAProxy the role configured."""

from __future__ import annotations

import json
from typing import Any

LB_COMMAND = "/opt/mcp-mesh/current/venv/bin/mcp-mesh-sdk lb"


def status(host: Any) -> dict[str, str]:
    data = json.loads(host.check_output(f"{LB_COMMAND} status --json"))
    return {server["server"]: server["status"] for server in data["servers"]}


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
