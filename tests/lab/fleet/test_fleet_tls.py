"""TLS end to end on the deployed fleet (issue 18), as a client and an operator see it.

- `curl --cacert <lab CA> https://<lb>/health` works; plain HTTP to the LB (port 80, or spoken
  to its TLS port) carries no request: a tool call sent that way never reaches an agent's audit
  log, while the same call over TLS does.
- The agents' and the registry's listeners give plain HTTP from the lab network no HTTP answer.
- The official MCP client (streamable HTTP, an httpx2 client verifying the lab CA) calls a tool
  through the LB with a client token.
- Certificate rotation: the agents' and the LB's certificates re-issued from the lab CA and
  deployed with site.yml under MCP load: no failed request, and each listener then serves the
  new certificate (by serial). The new certificates go into the lab's inventory, as an operator
  would put them in theirs, so the rest of the session deploys them too.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from cryptography import x509
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from lab.inventory import dump_yaml
from lab.state import LabPaths
from lab.tls import Issued, LabCa
from mcp_mesh_sdk.constants import AGENT_PORT, REGISTRY_PORT
from tests.lab.fleet.loadgen import fleet_load, tool_call

AUDIT_LOG = "/var/log/mcp-mesh/audit.log"  # the agents' MCP_MESH_AUDIT_LOG
MIN_RATE = 20.0  # tool calls per second the load must reach during the rotation


@pytest.fixture(scope="module")
def tls_fleet(fleet: Any) -> Any:
    if not fleet.tls or fleet.ca_file is None:
        pytest.fail(
            f"lab '{fleet.lab.name}' has no TLS in its inventory (made before issue 18?): "
            "bring it up again with `python -m lab up`",
            pytrace=False,
        )
    return fleet


def plain_http_answer(address: str, port: int, request: bytes) -> bytes | None:
    """Send `request` as plain bytes -> what came back before the server closed or 5 s passed
    (b"" nothing), or None when the connection was refused."""
    try:
        connection = socket.create_connection((address, port), timeout=5)
    except ConnectionRefusedError:
        return None
    answer = b""
    with connection:
        try:
            connection.sendall(request)
            while len(answer) < 4096:
                chunk = connection.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            pass
    return answer


def plain_get(path: str, host: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


def plain_tool_call(host: str, token: str, path: str) -> bytes:
    """A write_file tool call as a plain HTTP/1.1 request, bearer token in the clear."""
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "write_file", "arguments": {"path": path, "content": "plain\n"}},
        }
    ).encode()
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        f"MCP-Protocol-Version: 2025-06-18\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def audited_on(fleet: Any, lab_host: Any, marker: str) -> list[str]:
    """The agents whose audit log has a record that mentions `marker` (a unique path)."""
    found = []
    for name in fleet.lab.groups["agents"]:
        listed = lab_host(name).run(f"grep -c -F -- {marker} {AUDIT_LOG}")
        assert listed.rc in (0, 1), listed.stderr  # 1: no line matched
        if int(listed.stdout.strip() or "0") > 0:
            found.append(name)
    return found


def test_curl_with_the_lab_ca_gets_the_lbs_health_over_https(tls_fleet: Any) -> None:
    done = subprocess.run(
        ["curl", "-sS", "--fail", "--max-time", "10", "--cacert", str(tls_fleet.ca_file),
         tls_fleet.lb_url("/health")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "healthy"
    unverified = subprocess.run(
        ["curl", "-sS", "--max-time", "10", tls_fleet.lb_url("/health")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert unverified.returncode == 60, unverified.stderr  # the lab CA is no public CA


def test_plain_http_to_the_lb_carries_no_request(tls_fleet: Any, lab_host: Any) -> None:
    fleet = tls_fleet
    address, token = fleet.endpoints.lb_address, fleet.clients["carol"]
    marker = f"plain-{uuid.uuid4().hex}"
    for port in (80, fleet.endpoints.lb_port):
        health = plain_http_answer(address, port, plain_get("/health", address))
        assert health is None or not health.startswith(b"HTTP/"), (port, health[:200])
        call = plain_http_answer(address, port, plain_tool_call(address, token, f"{marker}.txt"))
        assert call is None or not call.startswith(b"HTTP/"), (port, call[:200])
    # The same call over TLS is audited: the check below would see a call that got through.
    over_tls = f"tls-{uuid.uuid4().hex}"
    ok, detail = tool_call(
        fleet.lb_url("/mcp"), token, "write_file",
        {"path": f"{over_tls}.txt", "content": "tls\n"}, fleet.ssl_context,
    )  # fmt: skip
    assert ok, detail
    assert len(audited_on(fleet, lab_host, over_tls)) == 1
    assert audited_on(fleet, lab_host, marker) == []


@pytest.mark.parametrize("service", ["agent", "registry"])
def test_agents_and_the_registry_give_plain_http_from_the_lab_network_no_answer(
    tls_fleet: Any, lab_host: Any, service: str
) -> None:
    fleet = tls_fleet
    if service == "agent":
        targets = [(name, AGENT_PORT) for name in fleet.lab.groups["agents"]]
        client = fleet.lab.groups["loadbalancer"][0]  # the LB's host, as the LB reaches them
    else:
        targets = [(fleet.lab.groups["registry"][0], REGISTRY_PORT)]
        client = fleet.lab.groups["agents"][0]  # an agent's host, as agents reach it
    for name, port in targets:
        address = fleet.lab.hosts[name]
        # From this machine's address on the lab bridge: no bytes of an HTTP answer.
        answer = plain_http_answer(address, port, plain_get("/health", address))
        assert answer is not None, f"{name}:{port} refused the connection: is it listening?"
        assert not answer.startswith(b"HTTP/"), (name, answer[:200])
        # From a lab host by name: curl gets no HTTP status; over TLS it gets 200.
        plain = lab_host(client).run(
            f"curl -sS -m 5 -o /dev/null -w '%{{http_code}}' http://{name}:{port}/health"
        )
        assert plain.rc != 0 and plain.stdout.strip() == "000", (name, plain.stdout, plain.stderr)
        verified = lab_host(client).run(
            f"curl -sS -m 5 -o /dev/null -w '%{{http_code}}' "
            f"--cacert /etc/mcp-mesh/tls/ca.pem https://{name}:{port}/health"
        )
        assert verified.stdout.strip() == "200", (name, verified.stdout, verified.stderr)


def test_the_official_mcp_client_calls_a_tool_through_the_lb_over_tls(tls_fleet: Any) -> None:
    fleet = tls_fleet
    path = f"tls/mcp-sdk-{uuid.uuid4().hex}.txt"

    async def main() -> tuple[Any, Any]:
        http_client = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {fleet.clients['dave']}"},
            verify=fleet.ssl_context,
            timeout=httpx2.Timeout(30.0, read=300.0),
            follow_redirects=True,
        )
        async with (
            http_client,
            streamable_http_client(fleet.lb_url("/mcp"), http_client=http_client) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            written = await session.call_tool("write_file", {"path": path, "content": "sdk\n"})
            back = await session.call_tool("read_file", {"path": path})
            return written, back

    written, back = asyncio.run(main())
    assert not written.is_error, written
    assert not back.is_error, back
    assert "sdk" in " ".join(getattr(part, "text", "") for part in back.content)


# ---- certificate rotation ----------------------------------------------------------------


def served_serial(address: str, port: int, context: ssl.SSLContext) -> int:
    """The serial of the certificate the listener at address:port serves (verified)."""
    with (
        socket.create_connection((address, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=address) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def listeners(fleet: Any) -> dict[str, tuple[str, str, int]]:
    """Each TLS listener -> (the host whose certificate it serves, address, port)."""
    lb = fleet.lab.groups["loadbalancer"][0]
    registry = fleet.lab.groups["registry"][0]
    found = {"lb": (lb, fleet.lab.hosts[lb], fleet.endpoints.lb_port)}
    found["registry"] = (registry, fleet.lab.hosts[registry], REGISTRY_PORT)
    for name in fleet.lab.groups["agents"]:
        found[name] = (name, fleet.lab.hosts[name], AGENT_PORT)
    return found


def put_in_inventory(inventory: Path, issued: dict[str, Issued]) -> None:
    """Replace hosts' mesh_common_tls_cert/key in the lab's inventory (0600, atomically)."""
    text = inventory.read_text()
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    data = yaml.safe_load(text)
    for name, pair in issued.items():
        host = data["all"]["hosts"][name]
        host["mesh_common_tls_cert"], host["mesh_common_tls_key"] = pair.cert, pair.key
    temporary = inventory.with_name(inventory.name + ".rotating")
    temporary.touch(mode=0o600)
    temporary.chmod(0o600)
    temporary.write_text("---\n" + header + dump_yaml(data))
    temporary.replace(inventory)


def test_certificates_rotate_under_load_without_a_failed_request(tls_fleet: Any) -> None:
    fleet = tls_fleet
    context = fleet.ssl_context
    ca = LabCa.load(LabPaths(fleet.lab.name).directory)
    hosts = [*fleet.lab.groups["loadbalancer"], *fleet.lab.groups["agents"]]
    issued = {name: ca.issue(name, fleet.lab.hosts[name]) for name in hosts}
    expected = {
        listener: x509.load_pem_x509_certificate(issued[host].cert.encode()).serial_number
        for listener, (host, _, _) in listeners(fleet).items()
        if host in issued
    }
    before = {
        listener: served_serial(address, port, context)
        for listener, (_, address, port) in listeners(fleet).items()
    }
    assert not set(before.values()) & set(expected.values())

    put_in_inventory(fleet.lab.inventory, issued)
    with fleet_load(fleet, max_seconds=400, max_requests=12_000) as load:
        run = fleet.playbook()
        time.sleep(3)  # calls after the last change, on the new certificates
    assert run.returncode == 0, f"{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
    output = run.stdout + run.stderr
    assert not [name for name, pair in issued.items() if pair.key.strip() in output]
    assert load.samples and load.rate_achieved >= MIN_RATE, f"{load.rate_achieved:.1f} calls/s"
    assert not load.failures, f"{len(load.failures)} failed calls, e.g. {load.failures[:3]}"

    deadline = time.monotonic() + 15  # the agents look at their certificate once a second
    while True:
        served = {
            listener: served_serial(address, port, context)
            for listener, (_, address, port) in listeners(fleet).items()
        }
        if served == expected or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert served == expected, {
        listener: ("new" if served[listener] == expected[listener] else "old")
        for listener in served
    }
    print(f"\nrotated {len(issued)} certificates under {len(load.samples)} calls, 0 failed")
