"""mesh_loadbalancer alone on a fresh host: HAProxy in front of the lab's agents and registry
hosts, TLS only, driven through its admin socket by the release's `mcp-mesh-sdk lb`."""

from __future__ import annotations

import json
import socket
import ssl
from typing import Any

CLI = "/opt/mcp-mesh/current/venv/bin/mcp-mesh-sdk"


def test_haproxy_runs_enabled_with_a_valid_configuration(host: Any) -> None:
    service = host.service("haproxy")
    assert service.is_running
    assert service.is_enabled
    assert host.run("haproxy -c -q -f /etc/haproxy/haproxy.cfg").rc == 0


def test_clients_get_tls_only(
    host: Any, lab_vars: dict[str, Any], tls_context: ssl.SSLContext
) -> None:
    assert host.socket("tcp://0.0.0.0:443").is_listening
    assert not host.socket("tcp://0.0.0.0:80").is_listening
    address = str(lab_vars["ansible_host"])
    with (
        socket.create_connection((address, 443), timeout=10) as raw,
        tls_context.wrap_socket(raw, server_hostname=address) as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_every_agent_and_registry_replica_is_a_server(host: Any, lab_vars: dict[str, Any]) -> None:
    status = json.loads(host.check_output(f"{CLI} lb status --json"))
    servers = {(server["backend"], server["server"]) for server in status["servers"]}
    agents = lab_vars["groups"]["agents"]
    registries = lab_vars["groups"]["registry"]
    assert {("mcp_mesh_agents", name) for name in agents} <= servers
    assert {("mcp_mesh_registry_replicas", name) for name in registries} <= servers
    # two registry hosts: the agents' registry frontend listens too
    assert host.socket("tcp://0.0.0.0:8001").is_listening


def test_the_tls_key_is_private(host: Any) -> None:
    pem = host.file("/etc/haproxy/certs/mesh.pem")
    assert pem.user == "root"
    assert pem.mode & 0o007 == 0
