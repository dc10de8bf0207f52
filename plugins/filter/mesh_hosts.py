"""Filters the playbooks use to address mesh hosts (kept in Python, tested in tests/unit)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_AGENT_PORT = 8080
DEFAULT_REGISTRY_PORT = 8000
DEFAULT_REGISTRY_FRONTEND_PORT = 8001  # mesh_loadbalancer_registry_port


def _true(value: Any) -> bool:
    """An Ansible boolean as the inventory or -e gives it (true, "true", "yes", 1, ...)."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "on", "1", "y", "t")
    return bool(value)


def mesh_agent_urls(
    hosts: Iterable[str], hostvars: Mapping[str, Any], default_port: int = DEFAULT_AGENT_PORT
) -> list[str]:
    """`http(s)://ADDRESS:PORT` of each agent host, as the load balancer reaches it.

    ADDRESS is the host's `ansible_host` (its inventory name without one), PORT its
    `mesh_agent_port`; an IPv6 address is put in brackets. The scheme is https when the host's
    `mesh_common_tls_enabled` is true (its agent then refuses plain HTTP); a host whose
    inventory does not set it has the role's default, false.
    """
    urls = []
    for host in hosts:
        variables = hostvars[host]
        address = str(variables.get("ansible_host") or host)
        port = int(variables.get("mesh_agent_port") or default_port)
        shown = f"[{address}]" if ":" in address else address
        scheme = "https" if _true(variables.get("mesh_common_tls_enabled", False)) else "http"
        urls.append(f"{scheme}://{shown}:{port}")
    return urls


def mesh_tls_endpoints(
    hosts: Iterable[str],
    hostvars: Mapping[str, Any],
    port_variable: str,
    default_port: int,
    tls_variable: str = "mesh_common_tls_enabled",
) -> list[str]:
    """`ADDRESS:PORT` of each host that serves TLS there (its `tls_variable`, else its
    `mesh_common_tls_enabled`), for `diagnose --served-certificate`: the load balancer's and
    the registry's certificates as their clients see them."""
    endpoints = []
    for host in hosts:
        variables = hostvars[host]
        tls = variables.get(tls_variable, variables.get("mesh_common_tls_enabled", False))
        if not _true(tls):
            continue
        address = str(variables.get("ansible_host") or host)
        shown = f"[{address}]" if ":" in address else address
        endpoints.append(f"{shown}:{int(variables.get(port_variable) or default_port)}")
    return endpoints


def mesh_registry_url(
    registry_hosts: Iterable[str], hostvars: Mapping[str, Any], loadbalancers: Iterable[str] = ()
) -> str:
    """The registry's base URL as the agents reach it by default (roles/mesh_agent/vars/main.yml,
    `_mesh_agent_registry_url`): the first registry host at its `mesh_registry_port`; with more
    than one registry replica and a load balancer, the first load balancer's registry frontend
    at its `mesh_loadbalancer_registry_port`. The scheme follows that host's
    `mesh_common_tls_enabled`; "" when there is no registry host."""
    registries, balancers = list(registry_hosts), list(loadbalancers)
    if not registries:
        return ""
    if len(registries) > 1 and balancers:
        host, variable, default = (
            balancers[0],
            "mesh_loadbalancer_registry_port",
            DEFAULT_REGISTRY_FRONTEND_PORT,
        )
    else:
        host, variable, default = registries[0], "mesh_registry_port", DEFAULT_REGISTRY_PORT
    variables = hostvars[host]
    address = str(variables.get("ansible_host") or host)
    shown = f"[{address}]" if ":" in address else address
    scheme = "https" if _true(variables.get("mesh_common_tls_enabled", False)) else "http"
    return f"{scheme}://{shown}:{int(variables.get(variable) or default)}"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "mesh_agent_urls": mesh_agent_urls,
            "mesh_tls_endpoints": mesh_tls_endpoints,
            "mesh_registry_url": mesh_registry_url,
        }
