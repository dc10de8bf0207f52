"""The real agent against the real registry: registration, heartbeats, and /ready following
FALLBACK_MODE while the registry is stopped and started again."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REGISTRY_TOKEN, request, run_service, wait_until
from processes import Service, free_port

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def real_registry(tmp_path: Path, port: int, db: Path) -> Iterator[Service]:
    env = {
        "MCP_MESH_REGISTRY_HOST": "127.0.0.1",
        "MCP_MESH_REGISTRY_PORT": str(port),
        "MCP_MESH_REGISTRY_DB": str(db),
        "MCP_MESH_REGISTRY_TOKEN": REGISTRY_TOKEN,
        "HEALTH_INTERVAL": "1",
    }
    with run_service(["registry"], env, log_path=tmp_path / f"registry-{port}.log",
                     wait_url=f"http://127.0.0.1:{port}/ready") as service:  # fmt: skip
        yield service


def listed(registry_url: str, status: str = "healthy") -> list[dict]:
    try:
        reply = request(f"{registry_url}/agents?status={status}", headers=AUTH, timeout=2)
    except OSError:
        return []
    return reply.json()["agents"] if reply.status == 200 else []


AUTH = {"Authorization": f"Bearer {REGISTRY_TOKEN}"}


def ready_status(agent) -> int:
    try:
        return agent.get("/ready", timeout=2).status
    except OSError:
        return -1


def mesh_env(agent_env: dict[str, str], registry_port: int, fallback: bool) -> dict[str, str]:
    return {
        **agent_env,
        "MESH_REGISTRY_URL": f"http://127.0.0.1:{registry_port}",
        "MCP_MESH_REGISTRY_TOKEN": REGISTRY_TOKEN,
        "MCP_MESH_ADVERTISE_HOST": "127.0.0.1",
        "HEALTH_INTERVAL": "1",
        "REQUEST_TIMEOUT": "2",
        "RETRY_ATTEMPTS": "1",
        "FALLBACK_MODE": "true" if fallback else "false",
    }


@pytest.mark.parametrize(
    "fallback",
    [False, True],
    ids=["fallback-off", "fallback-on"],
)
def test_ready_follows_fallback_mode_across_a_registry_restart(
    tmp_path, agent_env, start_agent, fallback
) -> None:
    port, db = free_port(), tmp_path / "registry.db"
    url = f"http://127.0.0.1:{port}"
    with real_registry(tmp_path, port, db):
        agent = start_agent(mesh_env(agent_env, port, fallback))
        assert wait_until(lambda: [a["name"] for a in listed(url)] == ["agent-under-test"])
        [entry] = listed(url)
        assert (entry["host"], entry["port"]) == ("127.0.0.1", int(agent_env["MCP_MESH_PORT"]))
        assert ready_status(agent) == 200

    # registry stopped
    if fallback:
        assert not wait_until(lambda: ready_status(agent) != 200, timeout=6)
    else:
        assert wait_until(lambda: ready_status(agent) == 503, timeout=15), agent.service.log()

    with real_registry(tmp_path, port, db):
        assert wait_until(lambda: ready_status(agent) == 200, timeout=15), agent.service.log()
        assert wait_until(lambda: [a["name"] for a in listed(url)] == ["agent-under-test"])


def test_agent_registers_again_when_the_registry_lost_it(tmp_path, agent_env, start_agent) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with real_registry(tmp_path, port, tmp_path / "first.db"):
        start_agent(mesh_env(agent_env, port, fallback=True))
        assert wait_until(lambda: len(listed(url)) == 1)
    # a registry with an empty database: the heartbeat gets 404 and the agent registers again
    with real_registry(tmp_path, port, tmp_path / "second.db"):
        assert wait_until(lambda: [a["name"] for a in listed(url)] == ["agent-under-test"])


def test_stopped_agent_is_listed_stale_then_healthy_when_back(
    tmp_path, agent_env, start_agent
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = mesh_env(agent_env, port, fallback=True)
    with real_registry(tmp_path, port, tmp_path / "r.db"):
        agent = start_agent(env)
        assert wait_until(lambda: len(listed(url)) == 1)
        agent.service.process.kill()  # no deregistration: it just stops heartbeating
        agent.service.process.wait(10)
        assert wait_until(lambda: len(listed(url, "stale")) == 1, timeout=15)
        start_agent(env)
        assert wait_until(lambda: len(listed(url, "healthy")) == 1, timeout=15)


def test_another_token_holder_cannot_move_a_running_agents_entry(
    tmp_path, agent_env, start_agent
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with real_registry(tmp_path, port, tmp_path / "r.db") as registry:
        agent = start_agent(mesh_env(agent_env, port, fallback=True))
        assert wait_until(lambda: len(listed(url)) == 1)
        [real] = listed(url)
        forged = {"name": "agent-under-test", "host": "10.6.6.6", "port": 9999, "version": "6.6.6"}
        for extra in ({}, {"X-Mesh-Agent-Key": "f" * 43}):  # the shared token alone, another key
            reply = request(
                f"{url}/agents/register", method="POST", headers={**AUTH, **extra}, body=forged
            )
            assert reply.status == 409, reply.text
            assert "registry forget agent-under-test" in reply.json()["error"]
        heartbeat = real["last_heartbeat"]
        assert wait_until(lambda: listed(url)[0]["last_heartbeat"] != heartbeat, timeout=10)
        [entry] = listed(url)  # the real agent's heartbeats keep its own entry, unchanged
        assert (entry["host"], entry["port"], entry["version"]) == (
            real["host"], real["port"], real["version"]
        )  # fmt: skip
        detailed = agent.get("/health/detailed").json()["checks"]["registry"]
        assert detailed["registered"] is True and detailed["error"] is None
    assert "refused a registration" in registry.log()
