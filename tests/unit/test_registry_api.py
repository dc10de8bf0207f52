import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from mcp_mesh_sdk import __version__
from mcp_mesh_sdk.config import Secret
from mcp_mesh_sdk.constants import AGENT_KEY_HEADER
from mcp_mesh_sdk.registry.app import MAX_BODY, create_app
from mcp_mesh_sdk.registry.config import RegistryConfig
from mcp_mesh_sdk.registry.store import AgentStore
from mcp_mesh_sdk.serving.tls import TlsSettings
from tests.tlsfixtures import Authority

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AGENT = {"name": "a1", "host": "10.0.0.5", "port": 8080, "version": "1.0.0", "capabilities": ["x"]}
KEY = "k" * 43  # the agent's own key
OTHER_KEY = "o" * 43  # another holder of the shared token
AGENT_AUTH = {**AUTH, AGENT_KEY_HEADER: KEY}
OTHER_AUTH = {**AUTH, AGENT_KEY_HEADER: OTHER_KEY}


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
    registered = client.post("/agents/register", json=AGENT, headers=AGENT_AUTH)
    assert registered.status_code == 200
    agent = registered.json()["agent"]
    assert agent["status"] == "healthy"
    assert agent["first_seen"].endswith("Z")

    clock.now += 31  # three missed 10 s intervals
    listed = client.get("/agents", params={"status": "stale"}, headers=AUTH).json()["agents"]
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
        "bound",
    }
    assert listed[0]["bound"] is True

    assert client.post("/agents/a1/heartbeat", headers=AGENT_AUTH).status_code == 200
    healthy = client.get("/agents", params={"status": "healthy"}, headers=AUTH).json()["agents"]
    assert healthy[0]["name"] == "a1"

    assert client.delete("/agents/a1", headers=AGENT_AUTH).status_code == 200
    assert client.get("/agents", headers=AUTH).json() == {"agents": []}


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


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}]
)
def test_reads_need_the_token_and_the_probes_do_not(client, headers) -> None:
    client.post("/agents/register", json=AGENT, headers=AGENT_AUTH)
    listing = client.get("/agents", headers=headers)
    assert listing.status_code == 401
    assert "10.0.0.5" not in listing.text and "a1" not in listing.text
    assert client.get("/agents", params={"name": "a1"}, headers=headers).status_code == 401
    assert client.get("/metrics", headers=headers).status_code == 401
    assert client.get("/health", headers=headers).status_code == 200
    assert client.get("/ready", headers=headers).status_code == 200
    assert [a["name"] for a in client.get("/agents", headers=AUTH).json()["agents"]] == ["a1"]


def test_another_token_holder_cannot_take_over_a_bound_name(client) -> None:
    assert client.post("/agents/register", json=AGENT, headers=AGENT_AUTH).status_code == 200
    forged = {**AGENT, "host": "attacker.example", "port": 9999}
    for headers in (OTHER_AUTH, AUTH):  # another key, and the shared token alone
        refused = client.post("/agents/register", json=forged, headers=headers)
        assert refused.status_code == 409
        assert "bound" in refused.json()["error"]
        assert client.post("/agents/a1/heartbeat", headers=headers).status_code == 403
        assert client.delete("/agents/a1", headers=headers).status_code == 403
    [entry] = client.get("/agents", headers=AUTH).json()["agents"]
    assert (entry["host"], entry["port"]) == ("10.0.0.5", 8080)
    assert client.post("/agents/a1/heartbeat", headers=AGENT_AUTH).status_code == 200


def test_the_binding_outlives_a_deregistration(client) -> None:
    client.post("/agents/register", json=AGENT, headers=AGENT_AUTH)
    assert client.delete("/agents/a1", headers=AGENT_AUTH).status_code == 200
    assert client.post("/agents/register", json=AGENT, headers=OTHER_AUTH).status_code == 409
    assert client.post("/agents/register", json=AGENT, headers=AGENT_AUTH).status_code == 200


def test_an_entry_registered_without_a_key_is_bound_at_its_next_keyed_registration(
    client,
) -> None:
    legacy = client.post("/agents/register", json=AGENT, headers=AUTH)  # an older agent
    assert legacy.status_code == 200 and legacy.json()["agent"]["bound"] is False
    assert client.post("/agents/a1/heartbeat", headers=AUTH).status_code == 200
    upgraded = client.post("/agents/register", json=AGENT, headers=AGENT_AUTH)
    assert upgraded.json()["agent"]["bound"] is True
    assert client.post("/agents/a1/heartbeat", headers=AUTH).status_code == 403


@pytest.mark.parametrize("key", ["short", "x" * 257, "not a key with spaces but long enough.."])
def test_a_malformed_agent_key_is_refused_without_echoing_it(client, key) -> None:
    response = client.post("/agents/register", json=AGENT, headers={**AUTH, AGENT_KEY_HEADER: key})
    assert response.status_code == 400
    assert AGENT_KEY_HEADER in response.json()["error"] and key not in response.text


def test_refusals_log_no_secret(client, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    client.post("/agents/register", json=AGENT, headers=AGENT_AUTH)
    client.post("/agents/register", json=AGENT, headers=OTHER_AUTH)
    client.delete("/agents/a1", headers=OTHER_AUTH)
    assert "refused a registration" in caplog.text
    for secret in (TOKEN, KEY, OTHER_KEY):
        assert secret not in caplog.text


@pytest.mark.parametrize(
    "body",
    [
        {**AGENT, "port": "8080"},
        {**AGENT, "port": 0},
        {**AGENT, "name": "../etc"},
        {**AGENT, "capabilities": "x"},
        {k: v for k, v in AGENT.items() if k != "host"},
        {**AGENT, "host": "evil host"},
        {**AGENT, "host": "a/b"},
        {**AGENT, "host": "-bad-.example"},
        {**AGENT, "host": "x" * 254},
        {**AGENT, "host": "http://10.0.0.5"},
        {**AGENT, "host": 5},
        [],
    ],
)
def test_bad_registration_is_rejected_with_a_reason(client, body) -> None:
    response = client.post("/agents/register", json=body, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["error"]


@pytest.mark.parametrize(
    "host", ["10.0.0.5", "agent1.lab", "agent1", "::1", "[2001:db8::1]", "agent1.lab."]
)
def test_host_names_and_addresses_are_accepted(client, host) -> None:
    response = client.post("/agents/register", json={**AGENT, "host": host}, headers=AUTH)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", b"\xff\xfe", b'{"a":' * 10_000],
    ids=["garbled", "empty", "not-utf8", "unclosed"],
)
def test_a_body_that_is_not_json_gets_400(client, content) -> None:
    response = client.post("/agents/register", content=content, headers=AUTH)
    assert response.status_code == 400
    assert response.json() == {"error": "body is not valid JSON"}


def test_a_nesting_too_deep_to_parse_gets_400_not_500(client) -> None:
    deep = b"[" * 30_000 + b"]" * 30_000
    assert len(deep) <= MAX_BODY
    with pytest.raises(RecursionError):
        json.loads(deep)  # what the parser does with it
    response = client.post("/agents/register", content=deep, headers=AUTH)
    assert response.status_code == 400


def test_a_body_over_the_limit_gets_413(client) -> None:
    declared = client.post("/agents/register", content=b" " * (MAX_BODY + 1), headers=AUTH)
    assert declared.status_code == 413
    assert declared.headers["connection"] == "close"

    def chunks():  # no Content-Length: counted as it streams
        for _ in range(MAX_BODY // 1024 + 2):
            yield b" " * 1024

    streamed = client.post("/agents/register", content=chunks(), headers=AUTH)
    assert streamed.status_code == 413
    assert "at most" in streamed.json()["error"]


def test_health_ready_and_metrics(client) -> None:
    health = client.get("/health").json()
    assert health["status"] == "healthy"
    assert health["version"] == __version__
    assert health["uptime_seconds"] >= 0
    assert client.get("/ready").status_code == 200
    client.post("/agents/register", json=AGENT, headers=AUTH)
    text = client.get("/metrics", headers=AUTH).text
    assert 'mcp_mesh_registry_agents{status="healthy",version="1.0.0"} 1.0' in text
    assert 'mcp_mesh_registry_agents_by_status{status="stale"} 0.0' in text
    # one series per member, labelled as the agent labels its own mcp_mesh_agent_info
    assert 'mcp_mesh_registry_agent{agent_name="a1",status="healthy"} 1.0' in text
    assert (
        'mcp_mesh_registry_requests_total{method="POST",route="/agents/register",status="200"} 1.0'
        in text
    )
    # plain HTTP: no certificate to expire
    assert "mcp_mesh_registry_tls_certificate_expiry_timestamp_seconds 0.0" in text


def test_metrics_carry_the_served_certificate_expiry(tmp_path, clock) -> None:
    issued = Authority.create().issue(days=5)
    cert_file = issued.write_combined(tmp_path / "registry.pem")
    config = RegistryConfig(
        db_path=tmp_path / "r.db", token=Secret(TOKEN), tls=TlsSettings(cert_file=cert_file)
    )
    store = AgentStore(config.db_path, config.stale_after, config.retention, clock=clock)
    with TestClient(create_app(config, store)) as test_client:
        text = test_client.get("/metrics", headers=AUTH).text
    store.close()
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    expiry = values["mcp_mesh_registry_tls_certificate_expiry_timestamp_seconds"]
    assert expiry == issued.cert.not_valid_after_utc.timestamp()
