"""The playbooks' filter plugins (plugins/filter)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "filter" / "mesh_hosts.py"
spec = importlib.util.spec_from_file_location("mesh_hosts", PLUGIN)
assert spec and spec.loader
mesh_hosts = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mesh_hosts)


def test_agent_urls_use_each_hosts_address_and_port() -> None:
    hostvars = {
        "agent1": {"ansible_host": "10.0.0.11"},
        "agent2": {"ansible_host": "10.0.0.12", "mesh_agent_port": 9090},
        "agent3": {},
        "agent4": {"ansible_host": "fd00::4"},
    }
    assert mesh_hosts.mesh_agent_urls(["agent1", "agent2", "agent3", "agent4"], hostvars) == [
        "http://10.0.0.11:8080",
        "http://10.0.0.12:9090",
        "http://agent3:8080",
        "http://[fd00::4]:8080",
    ]


def test_the_filter_is_registered_under_its_name() -> None:
    assert "mesh_agent_urls" in mesh_hosts.FilterModule().filters()


def test_agent_urls_are_https_where_tls_is_on() -> None:
    hostvars = {
        "agent1": {"ansible_host": "10.0.0.11", "mesh_common_tls_enabled": True},
        "agent2": {"ansible_host": "10.0.0.12", "mesh_common_tls_enabled": "false"},  # from -e
        "agent3": {"ansible_host": "fd00::3"},
    }
    hosts = ["agent1", "agent2", "agent3"]
    assert mesh_hosts.mesh_agent_urls(hosts, hostvars) == [
        "https://10.0.0.11:8080",
        "http://10.0.0.12:8080",
        "http://[fd00::3]:8080",
    ]


def test_tls_endpoints_are_the_hosts_serving_tls_at_their_port() -> None:
    hostvars = {
        "lb1": {"ansible_host": "10.0.0.10", "mesh_common_tls_enabled": True},
        "lb2": {"ansible_host": "fd00::2", "mesh_loadbalancer_tls_enabled": "true",
                "mesh_loadbalancer_port": 8443},
        "lb3": {"mesh_common_tls_enabled": True, "mesh_loadbalancer_tls_enabled": False},
        "lb4": {},
    }  # fmt: skip
    endpoints = mesh_hosts.mesh_tls_endpoints(
        ["lb1", "lb2", "lb3", "lb4"], hostvars, "mesh_loadbalancer_port", 443,
        "mesh_loadbalancer_tls_enabled",
    )  # fmt: skip
    # lb3 turned TLS off for its own port, lb4 never had it: nothing to read there.
    assert endpoints == ["10.0.0.10:443", "[fd00::2]:8443"]


def test_registry_url_is_the_only_registry_or_the_load_balancers_frontend_for_replicas() -> None:
    hostvars = {
        "lb1": {"ansible_host": "10.0.0.10", "mesh_common_tls_enabled": "true"},
        "lb2": {"ansible_host": "10.0.0.20", "mesh_loadbalancer_registry_port": 9001},
        "db1": {"ansible_host": "fd00::30", "mesh_registry_port": 8010},
    }
    url = mesh_hosts.mesh_registry_url
    assert url(["lb1"], hostvars, ["lb1"]) == "https://10.0.0.10:8000"
    assert url(["db1"], hostvars) == "http://[fd00::30]:8010"
    assert url(["lb1", "db1"], hostvars, ["lb1", "lb2"]) == "https://10.0.0.10:8001"
    assert url(["db1", "lb1"], hostvars, ["lb2"]) == "http://10.0.0.20:9001"
    # Replicas without a load balancer: the agent role's preflight refuses this; the first one.
    assert url(["db1", "lb1"], hostvars) == "http://[fd00::30]:8010"
    assert url([], hostvars, ["lb1"]) == ""
    assert mesh_hosts.FilterModule().filters()["mesh_registry_url"] is url
