"""The real agent against a fake registry on loopback: register, heartbeat, 404, fallback."""

from __future__ import annotations

import signal
import stat
from pathlib import Path

import pytest
from conftest import REGISTRY_TOKEN, FakeRegistry, serve_fake_registry, wait_until
from processes import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def registry_env(agent_env: dict[str, str], fake_registry: FakeRegistry) -> dict[str, str]:
    return {
        **agent_env,
        "MESH_REGISTRY_URL": fake_registry.url,
        "MCP_MESH_REGISTRY_TOKEN": REGISTRY_TOKEN,
        "HEALTH_INTERVAL": "1",
        "MCP_MESH_ADVERTISE_HOST": "agent1.lab",
    }


def test_registers_with_name_host_port_version_and_capabilities(
    registry_env, fake_registry: FakeRegistry, start_agent
) -> None:
    agent = start_agent(registry_env)
    assert wait_until(lambda: "POST /agents/register" in fake_registry.paths())
    call, _path, body, auth = fake_registry.calls[0]
    assert call == "POST"
    assert auth == f"Bearer {REGISTRY_TOKEN}"
    assert body == {
        "name": "agent-under-test",
        "host": "agent1.lab",
        "port": int(registry_env["MCP_MESH_PORT"]),
        "version": "1.0.0",
        "capabilities": ["read_file", "write_file", "list_directory", "file_info"],
    }
    assert wait_until(lambda: "POST /agents/agent-under-test/heartbeat" in fake_registry.paths())
    detailed = agent.get("/health/detailed").json()["checks"]["registry"]
    assert detailed["registered"] is True and detailed["last_heartbeat"] is not None
    assert agent.get("/health").json()["status"] == "healthy"


def test_registers_again_when_the_registry_forgot_the_agent(
    registry_env, fake_registry: FakeRegistry, start_agent
) -> None:
    start_agent(registry_env)
    assert wait_until(lambda: "agent-under-test" in fake_registry.agents)
    fake_registry.forget("agent-under-test")
    assert wait_until(lambda: fake_registry.paths().count("POST /agents/register") == 2)
    assert "agent-under-test" in fake_registry.agents


def test_deregisters_on_sigterm(registry_env, fake_registry: FakeRegistry, start_agent) -> None:
    agent = start_agent(registry_env)
    assert wait_until(lambda: "agent-under-test" in fake_registry.agents)
    process = agent.service.process
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    assert "DELETE /agents/agent-under-test" in fake_registry.paths()
    assert fake_registry.agents == {}


def test_without_fallback_ready_waits_for_the_registry(
    agent_env: dict[str, str], start_agent
) -> None:
    port = free_port()
    env = {
        **agent_env,
        "MESH_REGISTRY_URL": f"http://127.0.0.1:{port}",
        "MCP_MESH_REGISTRY_TOKEN": REGISTRY_TOKEN,
        "FALLBACK_MODE": "false",
    }
    agent = start_agent(env, wait_path="/livez")
    assert wait_until(lambda: agent.get("/ready").json().get("reason") == "not_registered")
    assert agent.get("/ready").status == 503
    with serve_fake_registry(port) as registry:  # the registry comes up late
        assert wait_until(lambda: agent.get("/ready").status == 200, timeout=20)
        assert "agent-under-test" in registry.agents


def test_without_fallback_ready_follows_the_registry_going_away_and_back(
    agent_env: dict[str, str], start_agent
) -> None:
    port = free_port()
    env = {
        **agent_env,
        "MESH_REGISTRY_URL": f"http://127.0.0.1:{port}",
        "MCP_MESH_REGISTRY_TOKEN": REGISTRY_TOKEN,
        "FALLBACK_MODE": "false",
        "HEALTH_INTERVAL": "1",
        "RETRY_ATTEMPTS": "1",
    }
    with serve_fake_registry(port):
        agent = start_agent(env)
    assert wait_until(lambda: agent.get("/ready").json().get("reason") == "registry_unreachable")
    with serve_fake_registry(port) as registry:  # a fresh registry: 404, then registered again
        assert wait_until(lambda: agent.get("/ready").status == 200, timeout=20)
        assert "agent-under-test" in registry.agents


def test_with_fallback_ready_while_the_registry_is_down(agent_env, start_agent) -> None:
    agent = start_agent(agent_env)  # agent_env's registry URL has no listener
    assert agent.get("/ready").status == 200
    registry = agent.get("/health/detailed").json()["checks"]["registry"]
    assert registry["registered"] is False and registry["fallback_mode"] is True


def test_a_refused_registry_token_is_reported(
    registry_env, fake_registry: FakeRegistry, start_agent
) -> None:
    registry_env["MCP_MESH_REGISTRY_TOKEN"] = "wrong-token-0123456789"
    agent = start_agent(registry_env)
    assert wait_until(lambda: agent.get("/health/detailed").json()["checks"]["registry"]["error"])
    error = agent.get("/health/detailed").json()["checks"]["registry"]["error"]
    assert "refused the token (HTTP 401)" in error
    assert "wrong-token" not in agent.service.log()


def test_every_call_carries_the_agent_key_kept_0600_across_restarts(
    registry_env, fake_registry: FakeRegistry, start_agent
) -> None:
    key_file = Path(registry_env["MCP_MESH_STATE_DIR"]) / "registry-agent.key"
    agent = start_agent(registry_env)
    assert wait_until(lambda: "POST /agents/agent-under-test/heartbeat" in fake_registry.paths())
    key = key_file.read_text().strip()
    assert len(key) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    agent.service.process.send_signal(signal.SIGTERM)
    assert agent.service.process.wait(15) == 0
    start_agent(registry_env)  # a restart (or an upgrade) keeps the key
    assert wait_until(lambda: fake_registry.paths().count("POST /agents/register") == 2)
    assert set(fake_registry.keys) == {key}  # register, heartbeat, deregister, register
    assert "DELETE /agents/agent-under-test" in fake_registry.paths()
    assert key not in agent.service.log()


def test_a_registry_refusing_the_name_is_reported_with_its_reason(
    registry_env, fake_registry: FakeRegistry, start_agent
) -> None:
    fake_registry.refuse_with = (409, "agent 'agent-under-test' is bound to another agent key")
    agent = start_agent(registry_env)
    assert wait_until(lambda: agent.get("/health/detailed").json()["checks"]["registry"]["error"])
    error = agent.get("/health/detailed").json()["checks"]["registry"]["error"]
    assert "HTTP 409" in error and "bound to another agent key" in error
