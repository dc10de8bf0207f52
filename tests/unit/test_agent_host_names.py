"""Which Host and Origin headers /mcp accepts (DNS rebinding protection stays on)."""

from __future__ import annotations

import socket

from mcp_mesh_sdk.agent.mcp_engine import host_patterns, reachable_names
from mcp_mesh_sdk.config import load_agent_config


def test_names_cover_host_name_loopback_addresses_and_the_advertised_host() -> None:
    config = load_agent_config(
        {"MCP_MESH_TOKEN": "token-long-enough-123456", "MCP_MESH_ADVERTISE_HOST": "agent7.lab"}
    )
    names = reachable_names(config, ["10.0.0.7", "fe80::1"])
    for expected in ("localhost", "127.0.0.1", "::1", "agent7.lab", "10.0.0.7", "fe80::1",
                     socket.gethostname().lower()):  # fmt: skip
        assert expected in names


def test_each_name_is_allowed_with_and_without_a_port() -> None:
    hosts, origins = host_patterns(["agent7.lab", "::1"], ["mesh.example", "10.1.1.1:8443"])
    assert {"agent7.lab", "agent7.lab:*", "[::1]", "[::1]:*"} <= set(hosts)
    assert {"mesh.example", "mesh.example:*", "10.1.1.1:8443"} <= set(hosts)
    assert "10.1.1.1:8443:*" not in hosts and "10.1.1.1" not in hosts
    assert {"http://agent7.lab:*", "https://mesh.example"} <= set(origins)


def test_a_specific_listen_address_is_allowed_too() -> None:
    config = load_agent_config(
        {"MCP_MESH_TOKEN": "token-long-enough-123456", "MCP_MESH_HOST": "192.0.2.10"}
    )
    assert "192.0.2.10" in reachable_names(config)
