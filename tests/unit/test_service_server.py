"""The server skeleton the agent and the registry share (`mcp_mesh_sdk.serving`): the bearer
check and the request metrics as each service answers them, the listener, and a real server
stopped by real signals with what it tells systemd on the way."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from mcp_mesh_sdk.agent.app import build_app
from mcp_mesh_sdk.agent.service import Agent
from mcp_mesh_sdk.config import load_agent_config
from mcp_mesh_sdk.envreader import Secret
from mcp_mesh_sdk.registry.app import create_app
from mcp_mesh_sdk.registry.config import RegistryConfig
from mcp_mesh_sdk.registry.store import AgentStore
from mcp_mesh_sdk.serving.bearer import BearerCheck
from mcp_mesh_sdk.serving.listener import ListenError, bind_listener
from mcp_mesh_sdk.serving.server import Hooks, ServiceServer
from mcp_mesh_sdk.serving.systemd import Standing, SystemdReporter

TOKEN = "unit-token-0123456789abcdef"
AGENT = {"name": "a1", "host": "10.0.0.5", "port": 8080, "version": "1.0.0", "capabilities": []}


@pytest.fixture
def agent(tmp_path: Path) -> Agent:
    (tmp_path / "data").mkdir()
    env = {
        "MCP_MESH_TOKEN": TOKEN,
        "BASE_DIRECTORY": str(tmp_path / "data"),
        "MESH_REGISTRY_URL": "http://127.0.0.1:9",
        "MCP_MESH_STATE_DIR": str(tmp_path / "state"),
    }
    return Agent(load_agent_config(env))


@pytest.fixture
def agent_client(agent: Agent) -> TestClient:
    return TestClient(build_app(agent))  # no lifespan: nothing starts in the background


@pytest.fixture
def registry_client(tmp_path: Path) -> Iterator[TestClient]:
    config = RegistryConfig(token=Secret(TOKEN), db_path=tmp_path / "r.db")
    store = AgentStore(config.db_path, config.stale_after, config.retention)
    yield TestClient(create_app(config, store))
    store.close()


def guarded_call(service: str, request: pytest.FixtureRequest, headers: dict[str, str]):
    """The guarded call of `service`: the agent's security summary, a registry write."""
    if service == "agent":
        return request.getfixturevalue("agent_client").get("/security/summary", headers=headers)
    client = request.getfixturevalue("registry_client")
    return client.post("/agents/register", json=AGENT, headers=headers)


@pytest.mark.parametrize("service", ["agent", "registry"])
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
     {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer "}],
    ids=["none", "wrong", "no-scheme", "other-scheme", "empty"],
)  # fmt: skip
def test_both_services_refuse_a_call_without_the_bearer_token(
    service: str, headers: dict[str, str], request: pytest.FixtureRequest
) -> None:
    refused = guarded_call(service, request, headers)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    admitted = guarded_call(service, request, {"Authorization": f"bearer  {TOKEN} "})
    assert admitted.status_code == 200


def test_the_agent_says_why_it_refused(agent_client: TestClient) -> None:
    missing = agent_client.get("/security/summary").json()
    wrong = agent_client.get("/security/summary", headers={"Authorization": "Bearer x"}).json()
    assert (missing["reason"], wrong["reason"]) == ("missing bearer token", "invalid bearer token")


def test_an_empty_token_admits_no_one() -> None:
    scope = {"type": "http", "headers": [(b"authorization", b"Bearer ")]}
    assert BearerCheck(Secret("")).refusal(scope) == "invalid bearer token"


@pytest.mark.parametrize(
    ("service", "path", "metric", "labels"),
    [
        ("agent", "/livez", "mcp_mesh_agent_http_requests_total", {"route": "livez"}),
        ("agent", "/metrics", "mcp_mesh_agent_http_requests_total", {"route": "metrics"}),
        ("registry", "/health", "mcp_mesh_registry_requests_total", {"route": "/health"}),
    ],
)
def test_both_services_echo_or_make_request_ids_and_count_requests(
    service: str, path: str, metric: str, labels: dict[str, str], request: pytest.FixtureRequest
) -> None:
    client: TestClient = request.getfixturevalue(f"{service}_client")
    assert client.get(path, headers={"X-Request-ID": "trace-42"}).headers["x-request-id"] == (
        "trace-42"
    )
    for unusable in ("two words", "x" * 129):
        made = client.get(path, headers={"X-Request-ID": unusable}).headers["x-request-id"]
        assert len(made) == 32 and made != unusable
    if service == "agent":
        registry = request.getfixturevalue("agent").metrics.registry
        counted = registry.get_sample_value(metric, {**labels, "method": "GET", "status": "200"})
        assert counted == 3
        assert registry.get_sample_value("mcp_mesh_agent_requests_in_flight") == 0
    else:
        sample = f'{metric}{{method="GET",route="{labels["route"]}",status="200"}} 3.0'
        assert sample in client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError) as error:
            bind_listener("127.0.0.1", port)
    assert str(error.value) == f"cannot listen on 127.0.0.1:{port}: address already in use"


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()


def serve_and_signal(server: ServiceServer, signals: list[signal.Signals]) -> float:
    """Serve `server` here (signals reach the main thread only); once it answers, send
    `signals` to this process; the seconds from the first signal until `serve_on` returned."""
    listener = bind_listener("127.0.0.1", 0)
    port = listener.getsockname()[1]
    signalled: list[float] = []

    def signal_once_serving() -> None:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        signalled.append(time.monotonic())
        for sig in signals:
            os.kill(os.getpid(), sig)
            time.sleep(0.05)

    sender = threading.Thread(target=signal_once_serving)
    sender.start()
    server.serve_on(listener)  # a signal not captured here would end the test run
    sender.join()
    assert listener.fileno() == -1  # closed
    return time.monotonic() - signalled[0]


def test_first_signal_drains_then_stops_cleanly_telling_systemd(notify_socket: socket.socket):
    seen: list[str] = []

    async def leave() -> None:
        seen.append("while draining")

    hooks = Hooks(
        systemd=SystemdReporter(lambda: Standing(True, "serving")),
        drain_delay=0.5,
        on_listening=lambda: seen.append("listening"),
        on_drain=lambda: seen.append("drain"),
        while_draining=leave,
    )
    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("hi"))])
    server = ServiceServer(app, hooks, graceful_timeout=1)
    took = serve_and_signal(server, [signal.SIGTERM])
    assert seen == ["listening", "drain", "while draining"]
    assert took >= 0.5  # the listener stayed open for the drain delay
    notify_socket.settimeout(0.5)
    lines = []
    with pytest.raises(TimeoutError):
        while True:
            lines += notify_socket.recv(4096).decode().splitlines()
    assert lines.count("READY=1") == 1 and "STATUS=serving" in lines
    assert "WATCHDOG=1" in lines
    assert lines.count("STOPPING=1") == 1 and "STATUS=stopping" in lines
    assert lines.index("READY=1") < lines.index("STOPPING=1")


def test_a_second_signal_cuts_the_drain_short() -> None:
    hooks = Hooks(systemd=SystemdReporter(lambda: Standing(True, "serving")), drain_delay=30)
    app = Starlette(routes=[])
    server = ServiceServer(app, hooks, graceful_timeout=1)
    assert serve_and_signal(server, [signal.SIGTERM, signal.SIGINT]) < 5


def test_a_third_signal_stops_at_once() -> None:
    hooks = Hooks(systemd=SystemdReporter(lambda: Standing(True, "serving")), drain_delay=30)
    server = ServiceServer(Starlette(), hooks, graceful_timeout=30)

    async def three_signals() -> list[tuple[bool, bool, bool]]:
        steps = []
        for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGINT):
            server.handle_stop_signal(sig)
            steps.append((server.draining, server.should_exit, server.force_exit))
        return steps

    assert asyncio.run(three_signals()) == [
        (True, False, False),
        (True, True, False),
        (True, True, True),
    ]
