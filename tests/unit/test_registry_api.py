import pytest
from starlette.testclient import TestClient

from mcp_mesh_sdk import __version__
from mcp_mesh_sdk.config import Secret
from mcp_mesh_sdk.registry.app import create_app
from mcp_mesh_sdk.registry.config import RegistryConfig
from mcp_mesh_sdk.registry.store import AgentStore

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AGENT = {"name": "a1", "host": "10.0.0.5", "port": 8080, "version": "1.0.0", "capabilities": ["x"]}


class FakeClock:
    now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(tmp_path, clock):
    config = RegistryConfig(db_path=tmp_path / "r.db", token=Secret(TOKEN), health_interval=10)
    store = AgentStore(config.db_path, config.stale_after, config.retention, clock=clock)
    with TestClient(create_app(config, store)) as test_client:
        yield test_client
    store.close()


def test_register_heartbeat_list_and_deregister(client, clock) -> None:
    registered = client.post("/agents/register", json=AGENT, headers=AUTH)
    assert registered.status_code == 200
    agent = registered.json()["agent"]
    assert agent["status"] == "healthy"
    assert agent["first_seen"].endswith("Z")

    clock.now += 31  # three missed 10 s intervals
    listed = client.get("/agents", params={"status": "stale"}).json()["agents"]
    assert [a["name"] for a in listed] == ["a1"]
    assert set(listed[0]) == {
        "name",
        "host",
        "port",
        "version",
        "capabilities",
        "first_seen",
        "last_heartbeat",
        "status",
    }

    assert client.post("/agents/a1/heartbeat", headers=AUTH).status_code == 200
    assert client.get("/agents", params={"status": "healthy"}).json()["agents"][0]["name"] == "a1"

    assert client.delete("/agents/a1", headers=AUTH).status_code == 200
    assert client.get("/agents").json() == {"agents": []}


def test_heartbeat_for_unknown_agent_is_404(client) -> None:
    assert client.post("/agents/ghost/heartbeat", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}]
)
def test_writes_need_the_token(client, headers) -> None:
    response = client.post("/agents/register", json=AGENT, headers=headers)
    assert response.status_code == 401
    assert client.post("/agents/a1/heartbeat", headers=headers).status_code == 401
    assert client.delete("/agents/a1", headers=headers).status_code == 401
    assert client.get("/agents").json() == {"agents": []}  # reads stay open


@pytest.mark.parametrize(
    "body",
    [
        {**AGENT, "port": "8080"},
        {**AGENT, "port": 0},
        {**AGENT, "name": "../etc"},
        {**AGENT, "capabilities": "x"},
        {k: v for k, v in AGENT.items() if k != "host"},
        [],
    ],
)
def test_bad_registration_is_rejected_with_a_reason(client, body) -> None:
    response = client.post("/agents/register", json=body, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["error"]


def test_invalid_json_is_rejected(client) -> None:
    response = client.post("/agents/register", content=b"{not json", headers=AUTH)
    assert response.status_code == 422


def test_health_ready_and_metrics(client) -> None:
    health = client.get("/health").json()
    assert health["status"] == "healthy"
    assert health["version"] == __version__
    assert health["uptime_seconds"] >= 0
    assert client.get("/ready").status_code == 200
    client.post("/agents/register", json=AGENT, headers=AUTH)
    text = client.get("/metrics").text
    assert 'mcp_mesh_registry_agents{status="healthy",version="1.0.0"} 1.0' in text
    assert 'mcp_mesh_registry_agents_by_status{status="stale"} 0.0' in text
    assert (
        'mcp_mesh_registry_requests_total{method="POST",route="/agents/register",status="200"} 1.0'
        in text
    )
