"""Shared helpers for integration tests: run a real process on a free loopback port.

`run_service(args, env, ...)` starts `python -m mcp_mesh_sdk ARGS` (see `processes.Service`),
waits until a URL answers, yields the service and always stops it by its own handle.
`request()` is a small HTTP client that returns status, headers and body for any answer.
The agent fixtures (`agent_env`, `start_agent`) and a fake registry build on them.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from processes import Service, free_port

from tests.httpserving import serving

AGENT_TOKEN = "integration-agent-token-0123456789"
REGISTRY_TOKEN = "integration-registry-token-0123456789"

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def request(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: Any = None,
    timeout: float = 10.0,
) -> Reply:
    """One HTTP request (loopback only); 4xx/5xx come back as a Reply, not an exception."""
    data = None if body is None else json.dumps(body).encode()
    prepared = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        prepared.add_header("Content-Type", "application/json")
    try:
        with _NO_PROXY.open(prepared, timeout=timeout) as answer:
            return Reply(answer.status, {k.lower(): v for k, v in answer.headers.items()},
                         answer.read())  # fmt: skip
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())


def wait_until(condition: Callable[[], object], timeout: float = 15.0, step: float = 0.05) -> bool:
    """Poll `condition` until it is truthy or `timeout` passes; True when it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


@contextlib.contextmanager
def run_service(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    log_path: Path,
    wait_url: str | None = None,
    wait_status: int = 200,
    timeout: float = 20.0,
) -> Iterator[Service]:
    """Start `mcp-mesh-sdk ARGS` with `env`, wait for `wait_url`, stop it afterwards."""
    service = Service(list(args), env, log_path).start()
    try:
        if wait_url is not None:
            service.wait_http(wait_url, timeout=timeout, want=wait_status)
        yield service
    finally:
        service.stop()


# -- the agent ---------------------------------------------------------------------------------


@pytest.fixture
def agent_env(tmp_path: Path) -> dict[str, str]:
    """A valid agent environment on 127.0.0.1, a free port and a temporary data directory."""
    data = tmp_path / "data"
    data.mkdir()
    return {
        "MCP_MESH_HOST": "127.0.0.1",
        "MCP_MESH_PORT": str(free_port()),
        "MCP_MESH_TOKEN": AGENT_TOKEN,
        "BASE_DIRECTORY": str(data),
        "AGENT_NAME": "agent-under-test",
        "MESH_REGISTRY_URL": f"http://127.0.0.1:{free_port()}",  # nobody listens: fallback
        "RETRY_INITIAL_DELAY": "100",
        "RETRY_MAX_DELAY": "500",
        "MCP_MESH_DRAIN_DELAY": "0",
        "MCP_MESH_STATE_DIR": str(tmp_path / "state"),
        "LOG_LEVEL": "INFO",
    }


@dataclass
class RunningAgent:
    service: Service
    base_url: str
    data: Path

    def get(self, path: str, **kwargs: Any) -> Reply:
        return request(self.base_url + path, **kwargs)

    @property
    def mcp_url(self) -> str:
        return self.base_url + "/mcp"

    def mcp_loaded(self) -> bool:
        return bool(self.get("/health/detailed").json()["checks"]["mcp"]["loaded"])


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[..., RunningAgent]]:
    """Call with an environment to start a real agent; every agent started is stopped."""
    with contextlib.ExitStack() as stack:

        def start(env: Mapping[str, str], wait_path: str = "/ready") -> RunningAgent:
            """Start an agent and wait for `wait_path` to answer 200 (and, for /ready, for
            the MCP engine too: it loads in the background after the listener is up)."""
            base = f"http://127.0.0.1:{env['MCP_MESH_PORT']}"
            service = stack.enter_context(
                run_service(["serve"], env, log_path=tmp_path / f"agent-{env['MCP_MESH_PORT']}.log",
                            wait_url=base + wait_path)
            )  # fmt: skip
            agent = RunningAgent(service, base, Path(env["BASE_DIRECTORY"]))
            if wait_path == "/ready":
                assert wait_until(agent.mcp_loaded), service.log()
            return agent

        yield start


@pytest.fixture
def agent(agent_env: dict[str, str], start_agent: Callable[..., RunningAgent]) -> RunningAgent:
    return start_agent(agent_env)


# -- a fake registry -----------------------------------------------------------------------------


@dataclass
class FakeRegistry:
    """Records calls; `forget()` makes the next heartbeat answer 404 (registry lost the agent)."""

    port: int
    token: str | None = REGISTRY_TOKEN
    calls: list[tuple[str, str, Any, str | None]] = field(default_factory=list)
    keys: list[str | None] = field(default_factory=list)  # X-Mesh-Agent-Key of each call
    refuse_with: tuple[int, str] | None = None  # (status, error) for every authorized call
    agents: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def forget(self, name: str) -> None:
        with self.lock:
            self.agents.pop(name, None)

    def paths(self) -> list[str]:
        with self.lock:
            return [f"{method} {path}" for method, path, _, _ in self.calls]

    def handle(
        self, method: str, path: str, body: Any, auth: str | None, key: str | None = None
    ) -> tuple[int, Any]:
        with self.lock:
            self.calls.append((method, path, body, auth))
            self.keys.append(key)
            if self.token is not None and auth != f"Bearer {self.token}":
                return 401, {"error": "unauthorized"}
            if self.refuse_with is not None:
                return self.refuse_with[0], {"error": self.refuse_with[1]}
            if method == "POST" and path == "/agents/register":
                self.agents[body["name"]] = body
                return 200, {"agent": body}
            parts = path.strip("/").split("/")
            if method == "POST" and len(parts) == 3 and parts[2] == "heartbeat":
                if parts[1] not in self.agents:
                    return 404, {"error": "unknown agent"}
                return 200, {"agent": self.agents[parts[1]]}
            if method == "DELETE" and len(parts) == 2:
                return (200, {}) if self.agents.pop(parts[1], None) else (404, {})
            return 404, {"error": "no such route"}


@contextlib.contextmanager
def serve_fake_registry(port: int | None = None) -> Iterator[FakeRegistry]:
    registry = FakeRegistry(port or free_port())

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            status, reply = registry.handle(self.command, self.path, body,
                                            self.headers.get("Authorization"),
                                            self.headers.get("X-Mesh-Agent-Key"))  # fmt: skip
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_DELETE = do_GET = _answer

        def log_message(self, *args: Any) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", registry.port), Handler)):
        yield registry


@pytest.fixture
def fake_registry() -> Iterator[FakeRegistry]:
    with serve_fake_registry() as registry:
        yield registry


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(20)
    try:
        yield sock
    finally:
        sock.close()


# -- PostgreSQL --------------------------------------------------------------------------------


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[Any]:
    """A PostgreSQL 15 cluster of its own on a free loopback port, stopped by its PID after.

    As root it lives in a directory the unprivileged user owns (tmp_path's parents are root's
    only), removed afterwards; otherwise in tmp_path."""
    import shutil
    import tempfile

    import postgres as pg

    if not pg.available():
        pytest.skip("PostgreSQL's initdb and postgres are not installed (postgresql-15)")
    root = Path(tempfile.mkdtemp(prefix="mesh-pg-")) if os.geteuid() == 0 else tmp_path / "postgres"
    cluster = pg.Cluster(root)
    try:
        cluster.init().start()
        yield cluster
    finally:
        cluster.stop()
        if root != tmp_path / "postgres":
            shutil.rmtree(root, ignore_errors=True)
