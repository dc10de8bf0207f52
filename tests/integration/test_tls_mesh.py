"""The real agent and registry on loopback with TLS on: their listeners refuse plain HTTP, the
official MCP client calls a tool over TLS, the agent registers over verified TLS (and refuses
a registry its CA does not vouch for), the ops commands reach the agent over https, and a
certificate rotated under a running agent drops no request."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from conftest import AGENT_TOKEN, REGISTRY_TOKEN, wait_until
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from processes import Service, free_port

from mcp_mesh_sdk.diagnose import agent_health
from mcp_mesh_sdk.local_agent import local_agent
from mcp_mesh_sdk.serving.tls import TlsSettings, client_context
from mcp_mesh_sdk.smoke import smoke_agent
from tests.tlsfixtures import Authority, served_certificate

pytestmark = pytest.mark.integration


def https(
    url: str, ca: Path, *, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> tuple[int, Any]:
    """(status, parsed JSON or text) of a GET over a new verified TLS connection."""
    context = client_context(url, ca)
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    connection = http.client.HTTPSConnection(host, int(port), timeout=timeout, context=context)
    try:
        connection.request(
            "GET", "/" + url.split("//", 1)[1].split("/", 1)[1], headers=headers or {}
        )
        answer = connection.getresponse()
        raw = answer.read()
    finally:
        connection.close()
    try:
        return answer.status, json.loads(raw)
    except ValueError:
        return answer.status, raw.decode(errors="replace")


def plain_http_answer(port: int) -> bytes:
    """What a plain HTTP request to the port gets back (b"" when the connection just ends)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
    return b"".join(chunks)


def start(args: list[str], env: dict[str, str], log: Path, url: str, ca: Path) -> Service:
    service = Service(args, env, log).start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert service.process is not None
        if service.process.poll() is not None:
            raise RuntimeError(f"exited {service.process.returncode}:\n{service.log()}")
        try:
            if https(url, ca, timeout=1)[0] == 200:
                return service
        except OSError:
            pass
        time.sleep(0.1)
    service.stop()
    raise TimeoutError(f"{url} did not answer 200:\n{service.log()}")


@dataclass
class Mesh:
    ca: Authority
    ca_file: Path
    registry_port: int
    agent_port: int
    agent_env_file: Path
    agent: Service
    folder: Path

    @property
    def registry_url(self) -> str:
        return f"https://127.0.0.1:{self.registry_port}"

    @property
    def agent_url(self) -> str:
        return f"https://127.0.0.1:{self.agent_port}"


def agent_env(folder: Path, port: int, registry_port: int, cert: Path, ca: Path) -> dict[str, str]:
    data = folder / f"data-{port}"
    data.mkdir(exist_ok=True)
    return {
        "MCP_MESH_HOST": "127.0.0.1",
        "MCP_MESH_PORT": str(port),
        "MCP_MESH_TOKEN": AGENT_TOKEN,
        "BASE_DIRECTORY": str(data),
        "AGENT_NAME": f"tls-agent-{port}",
        "MESH_REGISTRY_URL": f"https://127.0.0.1:{registry_port}",
        "MCP_MESH_REGISTRY_TOKEN": REGISTRY_TOKEN,
        "MCP_MESH_ADVERTISE_HOST": "127.0.0.1",
        "MCP_MESH_TLS_CERT_FILE": str(cert),
        "MCP_MESH_TLS_CA_FILE": str(ca),
        "HEALTH_INTERVAL": "1",
        "REQUEST_TIMEOUT": "2",
        "RETRY_ATTEMPTS": "1",
        "RETRY_INITIAL_DELAY": "100",
        "RETRY_MAX_DELAY": "500",
        "MCP_MESH_DRAIN_DELAY": "0",
        "MCP_MESH_INCIDENT_INTERVAL": "1",
        "MCP_MESH_STATE_DIR": str(folder / f"state-{port}"),
    }


def listed(mesh: Mesh) -> list[str]:
    auth = {"Authorization": f"Bearer {REGISTRY_TOKEN}"}
    try:
        status, body = https(
            f"{mesh.registry_url}/agents?status=healthy", mesh.ca_file, headers=auth
        )
    except OSError:
        return []
    return [agent["name"] for agent in body["agents"]] if status == 200 else []


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    folder = tmp_path_factory.mktemp("tls-mesh")
    ca = Authority.create()
    ca_file = ca.write(folder / "ca.pem")
    registry_pem = ca.issue(("registry", "127.0.0.1")).write_combined(folder / "registry.pem")
    agent_pem = ca.issue(("agent-1", "127.0.0.1"), days=2).write_combined(folder / "agent.pem")
    registry_port, agent_port = free_port(), free_port()
    registry_env = {
        "MCP_MESH_REGISTRY_HOST": "127.0.0.1",
        "MCP_MESH_REGISTRY_PORT": str(registry_port),
        "MCP_MESH_REGISTRY_DB": str(folder / "registry.db"),
        "MCP_MESH_REGISTRY_TOKEN": REGISTRY_TOKEN,
        "MCP_MESH_REGISTRY_TLS_CERT_FILE": str(registry_pem),
        "MCP_MESH_REGISTRY_TLS_CA_FILE": str(ca_file),
        "HEALTH_INTERVAL": "1",
    }
    registry = start(
        ["registry"], registry_env, folder / "registry.log",
        f"https://127.0.0.1:{registry_port}/ready", ca_file,
    )  # fmt: skip
    env = agent_env(folder, agent_port, registry_port, agent_pem, ca_file)
    env_file = folder / "agent.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
    try:
        agent = start(
            ["serve"], env, folder / "agent.log", f"https://127.0.0.1:{agent_port}/health", ca_file
        )
        try:
            yield Mesh(ca, ca_file, registry_port, agent_port, env_file, agent, folder)
        finally:
            agent.stop()
    finally:
        registry.stop()


def test_the_agent_and_the_registry_give_plain_http_no_answer(mesh: Mesh) -> None:
    for port in (mesh.agent_port, mesh.registry_port):
        answer = plain_http_answer(port)
        assert not answer.startswith(b"HTTP/"), answer[:200]
    assert https(f"{mesh.agent_url}/health", mesh.ca_file)[0] == 200
    assert https(f"{mesh.registry_url}/health", mesh.ca_file)[0] == 200


def test_the_agent_registers_with_the_registry_over_verified_tls(mesh: Mesh) -> None:
    name = f"tls-agent-{mesh.agent_port}"
    assert wait_until(lambda: listed(mesh) == [name], timeout=20), mesh.agent.log()


def test_the_official_mcp_client_calls_a_tool_over_tls(mesh: Mesh) -> None:
    context = client_context(mesh.agent_url, mesh.ca_file)
    assert context is not None

    async def main() -> tuple[bool, str]:
        http_client = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {AGENT_TOKEN}"},
            timeout=httpx2.Timeout(30),
            verify=context,
            trust_env=False,
        )
        async with (
            http_client,
            streamable_http_client(f"{mesh.agent_url}/mcp", http_client=http_client) as (r, w),
            ClientSession(r, w) as session,
        ):
            await session.initialize()
            written = await session.call_tool(
                "write_file", {"path": "tls/hello.txt", "content": "over TLS"}
            )
            read = await session.call_tool("read_file", {"path": "tls/hello.txt"})
            return bool(written.is_error), json.dumps(read.structured_content)

    failed, read = asyncio.run(main())
    assert not failed
    assert "over TLS" in read


def test_the_ops_commands_reach_the_agent_over_https(mesh: Mesh) -> None:
    agent = local_agent(mesh.agent_env_file)
    assert agent.base_url == mesh.agent_url
    status, body = agent.call("GET", "/health/detailed")
    assert status == 200 and body["status"] in ("healthy", "degraded")
    health = agent_health(
        mesh.agent_port, tls=TlsSettings(cert_file=Path("/unused"), ca_file=mesh.ca_file)
    )
    assert health["running"] and health["url"].startswith("https://")
    result = smoke_agent(mesh.agent_env_file)
    assert result.passed, result.cause


def test_the_agent_opens_an_incident_for_its_own_certificate_near_expiry(mesh: Mesh) -> None:
    incidents = mesh.folder / f"state-{mesh.agent_port}" / "incidents.jsonl"

    def opened() -> list[dict[str, Any]]:
        if not incidents.exists():
            return []
        lines = [json.loads(line) for line in incidents.read_text().splitlines() if line]
        return [i for i in lines if i["cause"].startswith("certificate:")]

    assert wait_until(lambda: opened(), timeout=15), mesh.agent.log()
    (incident,) = opened()
    assert incident["severity"] == "P2_High"
    assert str(mesh.folder / "agent.pem") in incident["description"]


def test_an_agent_refuses_a_registry_its_ca_does_not_vouch_for(mesh: Mesh, tmp_path: Path) -> None:
    other_ca = Authority.create("another CA").write(tmp_path / "other-ca.pem")
    port = free_port()
    pem = mesh.ca.issue(("agent-2", "127.0.0.1")).write_combined(tmp_path / "agent.pem")
    env = agent_env(tmp_path, port, mesh.registry_port, pem, other_ca)
    # the agent's own listener is verified with the mesh CA; its registry client with another
    agent = start(["serve"], env, tmp_path / "agent.log", f"https://127.0.0.1:{port}/health",
                  mesh.ca_file)  # fmt: skip
    try:

        def registry_error() -> str:
            detailed = https(f"https://127.0.0.1:{port}/health/detailed", mesh.ca_file)[1]
            return str(detailed["checks"]["registry"]["error"] or "")

        assert wait_until(registry_error, timeout=15), agent.log()
        assert "certificate verify failed" in registry_error().lower()
        assert f"tls-agent-{port}" not in listed(mesh)
    finally:
        agent.stop()


def test_rotating_the_certificate_under_a_running_agent_drops_no_request(
    mesh: Mesh, tmp_path: Path
) -> None:
    port = free_port()
    pem = tmp_path / "agent.pem"
    mesh.ca.issue(("agent-3", "127.0.0.1")).write_combined(pem)
    env = agent_env(tmp_path, port, mesh.registry_port, pem, mesh.ca_file)
    url = f"https://127.0.0.1:{port}"
    agent = start(["serve"], env, tmp_path / "agent.log", f"{url}/health", mesh.ca_file)
    try:
        old = served_certificate(port, mesh.ca_file).serial_number
        new = mesh.ca.issue(("agent-3", "127.0.0.1"))
        failures: list[str] = []
        requests = [0]
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():  # each request on a new TLS connection
                try:
                    status, _ = https(f"{url}/health", mesh.ca_file)
                    if status != 200:
                        failures.append(f"HTTP {status}")
                except (OSError, ssl.SSLError) as exc:
                    failures.append(repr(exc))
                requests[0] += 1

        workers = [threading.Thread(target=hammer) for _ in range(4)]
        for worker in workers:
            worker.start()
        try:
            time.sleep(0.5)
            staged = pem.with_suffix(".new")
            staged.write_bytes(new.combined_pem())
            os.replace(staged, pem)  # the rotation: one atomic rename
            assert wait_until(
                lambda: served_certificate(port, mesh.ca_file).serial_number != old, timeout=5
            )
            time.sleep(0.5)
        finally:
            stop.set()
            for worker in workers:
                worker.join(10)
        assert served_certificate(port, mesh.ca_file).serial_number == new.cert.serial_number
        assert failures == [], failures[:5]
        assert requests[0] > 20

        staged.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        os.replace(staged, pem)  # a bad replacement: the agent keeps the certificate it has
        assert wait_until(lambda: "new TLS certificate not loaded" in agent.log(), timeout=5)
        time.sleep(1.5)
        assert served_certificate(port, mesh.ca_file).serial_number == new.cert.serial_number
        assert https(f"{url}/health", mesh.ca_file)[0] == 200
        assert agent.log().count("new TLS certificate not loaded") == 1
    finally:
        agent.stop()
