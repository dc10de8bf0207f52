"""Where the lab's services answer and how to trust them: the one place that knows the scheme.

With TLS on (the lab's inventory sets `mesh_common_tls_enabled`, as `lab up` writes it) the load
balancer answers on https port 443, the agents and the registry on https at their ports, each
verified against the lab's CA (`ssl_context`; `ca_file` for curl). Without it, plain http and
the LB on port 80. Tests and benchmarks build every URL with `lb_url`, `agent_url` and
`registry_url`, so none of them hard-codes a scheme or a port. With registry replicas (a lab
with db1: two hosts in group registry) `registry_url` stays the first one; `registry_urls` names
each replica's own listener and `registry_frontend_url` the load balancer's registry frontend,
where the agents heartbeat.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from lab.state import LabPaths
from lab.tls import ca_file
from mcp_mesh_sdk.constants import AGENT_PORT, REGISTRY_PORT

# mesh_loadbalancer_registry_port's default: the registry frontend, with more than one replica.
REGISTRY_FRONTEND_PORT = 8001


@dataclass(frozen=True)
class Endpoints:
    hosts: dict[str, str]  # host name -> address
    groups: dict[str, list[str]]
    ca_pem: str | None  # the CA the services' certificates verify against; None: plain HTTP
    ca_file: Path | None  # the same CA as a file (curl --cacert), in the lab's state directory

    @classmethod
    def from_inventory(cls, inventory: Path) -> Endpoints:
        data = yaml.safe_load(inventory.read_text())["all"]
        return cls.from_inventory_data(data)

    @classmethod
    def from_inventory_data(cls, data: dict[str, Any]) -> Endpoints:
        """From the `all` mapping of a lab inventory."""
        lab_vars = data.get("vars") or {}
        hosts = {name: str(values["lab_address"]) for name, values in data["hosts"].items()}
        groups = {name: list(body["hosts"]) for name, body in data["children"].items()}
        tls = bool(lab_vars.get("mesh_common_tls_enabled")) and bool(
            lab_vars.get("mesh_common_tls_ca_cert")
        )
        if not tls:
            return cls(hosts, groups, None, None)
        path = ca_file(LabPaths(str(lab_vars["lab_name"])).directory)
        return cls(hosts, groups, str(lab_vars["mesh_common_tls_ca_cert"]), path)

    @property
    def tls(self) -> bool:
        return self.ca_pem is not None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def lb_port(self) -> int:
        return 443 if self.tls else 80

    @property
    def lb_address(self) -> str:
        return self.hosts[self.groups["loadbalancer"][0]]

    @property
    def registry_address(self) -> str:
        return self.hosts[self.groups["registry"][0]]

    def lb_url(self, path: str = "") -> str:
        """The load balancer's URL for `path` ("/health", "/mcp"), on the scheme's own port."""
        return f"{self.scheme}://{self.lb_address}{path}"

    def agent_url(self, name: str, path: str = "") -> str:
        """Agent `name`'s own listener (not through the LB) for `path`."""
        return f"{self.scheme}://{self.hosts[name]}:{AGENT_PORT}{path}"

    def agent_urls(self, path: str = "") -> list[str]:
        return [self.agent_url(name, path) for name in self.groups["agents"]]

    def registry_url(self, path: str = "") -> str:
        return f"{self.scheme}://{self.registry_address}:{REGISTRY_PORT}{path}"

    @property
    def registry_replicas(self) -> list[str]:
        """The registry group's hosts: more than one are replicas behind the LB's frontend."""
        return list(self.groups.get("registry", []))

    def registry_urls(self, path: str = "") -> dict[str, str]:
        """Each registry replica's own listener for `path`: {host name: url}."""
        return {
            name: f"{self.scheme}://{self.hosts[name]}:{REGISTRY_PORT}{path}"
            for name in self.registry_replicas
        }

    def registry_frontend_url(self, path: str = "") -> str:
        """The load balancer's registry frontend (rendered with more than one replica)."""
        return f"{self.scheme}://{self.lb_address}:{REGISTRY_FRONTEND_PORT}{path}"

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """Verifies the services against the lab's CA (by address: the certificates name it);
        None with plain HTTP. Pass it to urlopen(context=...) and the load generators."""
        if self.ca_pem is None:
            return None
        return ssl.create_default_context(cadata=self.ca_pem)
