"""Where the lab tests find the fleet's services (tests/lab/fleet/endpoints.py) and how the
MCP load spreads over the lab's clients (tests/lab/fleet/loadgen.py)."""

from __future__ import annotations

import ssl
from pathlib import Path

import yaml

from lab.inventory import write_inventory
from lab.topology import build_topology
from tests.lab.fleet.endpoints import Endpoints
from tests.lab.fleet.loadgen import McpLoad

KEY = Path("/var/lib/mcp-mesh-lab/mesh/id_ed25519")


def inventory(tmp_path: Path) -> Path:
    from ipaddress import IPv4Network

    path = tmp_path / "hosts.yml"
    write_inventory(path, build_topology("mesh", 2, IPv4Network("10.231.7.0/24")), KEY)
    return path


def test_a_lab_with_tls_is_reached_over_https_verified_against_its_ca(tmp_path: Path) -> None:
    endpoints = Endpoints.from_inventory(inventory(tmp_path))
    assert endpoints.lb_url("/health") == "https://10.231.7.10/health"
    assert endpoints.agent_url("agent2", "/mcp") == "https://10.231.7.12:8080/mcp"
    assert endpoints.registry_url("/agents") == "https://10.231.7.10:8000/agents"
    assert endpoints.ca_file == Path("/var/lib/mcp-mesh-lab/mesh/tls/ca.pem")
    context = endpoints.ssl_context
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_a_lab_with_a_database_host_names_each_registry_replica_and_the_frontend(
    tmp_path: Path,
) -> None:
    from ipaddress import IPv4Network

    path = tmp_path / "hosts.yml"
    topology = build_topology("mesh", 2, IPv4Network("10.231.7.0/24"), database=True)
    write_inventory(path, topology, KEY)
    endpoints = Endpoints.from_inventory(path)
    assert endpoints.registry_replicas == ["lb1", "db1"]
    assert endpoints.registry_urls("/ready") == {
        "lb1": "https://10.231.7.10:8000/ready",
        "db1": "https://10.231.7.13:8000/ready",
    }
    assert endpoints.registry_frontend_url("/agents") == "https://10.231.7.10:8001/agents"
    assert endpoints.registry_url() == "https://10.231.7.10:8000"


def test_a_lab_without_tls_is_reached_over_plain_http(tmp_path: Path) -> None:
    data = yaml.safe_load(inventory(tmp_path).read_text())["all"]
    data["vars"]["mesh_common_tls_enabled"] = False
    endpoints = Endpoints.from_inventory_data(data)
    assert endpoints.lb_url("/mcp") == "http://10.231.7.10/mcp"
    assert endpoints.agent_url("agent1") == "http://10.231.7.11:8080"
    assert endpoints.ssl_context is None and endpoints.ca_file is None


def test_the_mcp_load_sends_each_clients_write_and_read_with_the_next_token() -> None:
    load = McpLoad("https://lb/mcp", tokens=["a", "b", "c"], token="operator")
    assert [load.client_token(number) for number in range(8)] == list("aabbccaa")
    assert McpLoad("https://lb/mcp", token="operator").client_token(5) == "operator"
