"""Two registry replicas on one PostgreSQL database, behind the load balancer's registry frontend.

On a lab with a database host (`lab up --database`: lb1 and db1 both in group registry) what an
operator sees: every agent is listed once and healthy wherever the registry is asked (the
frontend the agents heartbeat to, each replica's own listener); stopping the replica on lb1
leaves every agent registered and healthy, its heartbeats going on to db1's replica, and
verify.yml still passes; after the restart both replicas list the same agents. Skipped on a lab
whose registry group has fewer than two hosts (one registry on SQLite).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.lab.fleet.endpoints import Endpoints
from tests.lab.fleet.polling import wait_for

REGISTRY_UNIT = "mcp-mesh-registry.service"
REGISTRY_BACKEND = "mcp_mesh_registry_replicas"  # mesh_common_registry_lb_backend
# The agents heartbeat every 30 s (the lab's default): within one interval and a little, every
# agent's heartbeat must have reached the replica still up.
HEARTBEAT_SECONDS = 30
LB_CHECK_SECONDS = 15  # HAProxy marks a replica DOWN or UP after 2 checks 2 s apart


@pytest.fixture(scope="session")
def replicas(lab: Any) -> list[str]:
    """The registry group's hosts; requested before `fleet`, so a lab without replicas is
    skipped before anything is deployed."""
    names = Endpoints.from_inventory(lab.inventory).registry_replicas
    if len(names) < 2:
        pytest.skip(
            f"this lab's registry group has {len(names)} host(s): registry replicas need a "
            "database host (`lab up --database`, MESH_LAB_DATABASE=1)"
        )
    return names


def listed(fleet: Any, url: str) -> list[dict[str, Any]]:
    """GET /agents at `url` (a registry or the frontend) with the registry's token."""
    request = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {fleet.tokens['registry']}"}
    )
    with fleet.urlopen(request, timeout=5) as response:
        agents: list[dict[str, Any]] = json.loads(response.read())["agents"]
    return agents


def healthy_names(agents: list[dict[str, Any]]) -> list[str]:
    return sorted(agent["name"] for agent in agents if agent["status"] == "healthy")


def replica_states(lab_host: Any, fleet: Any) -> dict[str, str]:
    """{replica: HAProxy status} of the registry frontend's servers, read on the LB host."""
    lb = lab_host(fleet.lab.groups["loadbalancer"][0])
    done = lb.run("/opt/mcp-mesh/current/venv/bin/mcp-mesh-sdk lb status --json")
    assert done.rc == 0, done.stderr
    servers = json.loads(done.stdout)["servers"]
    return {s["server"]: s["status"] for s in servers if s["backend"] == REGISTRY_BACKEND}


def test_every_agent_is_listed_once_and_healthy_by_the_frontend_and_each_replica(
    replicas: list[str], fleet: Any, lab_host: Any
) -> None:
    agents = sorted(fleet.lab.groups["agents"])
    assert replica_states(lab_host, fleet) == dict.fromkeys(replicas, "UP")
    where = {"frontend": fleet.endpoints.registry_frontend_url("/agents")}
    where |= fleet.endpoints.registry_urls("/agents")
    for name, url in where.items():
        found = listed(fleet, url)
        assert sorted(agent["name"] for agent in found) == agents, name  # each one once
        assert healthy_names(found) == agents, name
    # The agents heartbeat to the frontend, not to one replica.
    for agent in agents:
        env = lab_host(agent).file("/etc/mcp-mesh/agent.env").content_string
        assert f'MESH_REGISTRY_URL="{fleet.endpoints.registry_frontend_url()}"' in env


def test_agents_stay_healthy_with_one_replica_stopped_and_both_agree_after_its_restart(
    replicas: list[str], fleet: Any, lab_host: Any
) -> None:
    agents = sorted(fleet.lab.groups["agents"])
    stopped_name, serving_name = replicas[0], replicas[1]
    stopped, serving_url = lab_host(stopped_name), fleet.endpoints.registry_urls("/agents")
    frontend = fleet.endpoints.registry_frontend_url("/agents")
    before = {a["name"]: a["last_heartbeat"] for a in listed(fleet, serving_url[serving_name])}
    assert stopped.run(f"systemctl stop {REGISTRY_UNIT}").rc == 0
    try:
        wait_for(
            f"the load balancer sees the stopped {stopped_name} DOWN",
            lambda: replica_states(lab_host, fleet).get(stopped_name) == "DOWN",
            LB_CHECK_SECONDS,
        )
        # For one heartbeat interval and a little: every agent stays listed healthy, and each
        # one's heartbeat reaches the replica still up (its last heartbeat moves on).
        deadline = time.monotonic() + HEARTBEAT_SECONDS + 10
        moved: set[str] = set()
        while time.monotonic() < deadline and moved != set(agents):
            found = listed(fleet, frontend)
            assert healthy_names(found) == agents
            moved |= {a["name"] for a in found if a["last_heartbeat"] > before[a["name"]]}
            time.sleep(2)
        assert moved == set(agents), (
            f"no heartbeat reached {serving_name} from {set(agents) - moved}"
        )
        # The deploy's own verification passes with one replica down.
        verify = fleet.playbook(playbook="playbooks/verify.yml")
        assert verify.returncode == 0, verify.stdout[-4000:]
        warning = verify.stdout.split("Warn about registry replicas", 1)[-1]
        assert "registry replicas not UP" in warning and stopped_name in warning
    finally:
        assert stopped.run(f"systemctl start {REGISTRY_UNIT}").rc == 0
    wait_for(
        "both registry replicas UP in the load balancer again",
        lambda: replica_states(lab_host, fleet) == dict.fromkeys(replicas, "UP"),
        LB_CHECK_SECONDS + 30,
    )
    lists = {
        name: listed(fleet, url) for name, url in fleet.endpoints.registry_urls("/agents").items()
    }
    for name, found in lists.items():
        assert sorted(agent["name"] for agent in found) == agents, name
        assert healthy_names(found) == agents, name
    # One database: both replicas answer the same rows.
    first, second = (
        sorted((a["name"], a["first_seen"]) for a in found) for found in lists.values()
    )
    assert first == second


def test_a_replica_is_reachable_only_with_its_certificate_verified(
    replicas: list[str], fleet: Any
) -> None:
    if not fleet.tls:
        pytest.skip("this lab runs without TLS")
    for url in [
        fleet.endpoints.registry_frontend_url("/ready"),
        *fleet.endpoints.registry_urls("/ready").values(),
    ]:
        with fleet.urlopen(url) as response:
            assert response.status == 200, url
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(url, timeout=5)  # the lab's CA is not the system's
