"""The fleet deployed once per session on the session's lab, from the collection mcp_mesh.ops as a
user installs it: `ansible-galaxy collection build` of the checkout, the tarball installed into a
collections path of the session's, `ansible-playbook mcp_mesh.ops.site` run from a directory
outside the checkout whose ansible.cfg names nothing of it (tests/collection.py). The rest of the
suite runs the checkout's playbooks (playbooks/*.yml, as a clone does) on that fleet.

`fleet` (session) -> Fleet
    .version          runtime version deployed (what the source tree holds)
    .tokens           {"agent": ..., "registry": ..., "backup_identity": ...} secrets the
                      deploy used (never printed)
    .clients          {"alice": token, ..., "load-01": token, ...} mesh_agent_clients deployed
    .load_tokens      the load clients' tokens (load-01..load-48), what the load generators use
    .collection       the installed collection (tests/collection.py's Installed): .root,
                      .playbook("site", *args) runs mcp_mesh.ops.site from outside the checkout
    .source           the installed collection's root: the source (pyproject.toml, runtime/)
                      every run deploys, the collection's and the checkout's playbooks alike
    .extra_args       arguments every further ansible-playbook run needs (secrets, source)
    .deploy_seconds   wall time of the first deploy (from the collection)
    .playbook(*args)  run playbooks/site.yml (the checkout's), the same secrets -> CompletedProcess
    .collection_playbook(*args)  run mcp_mesh.ops.site from the installed collection, the same
                      secrets, its own source (the collection's default) -> CompletedProcess
    .registry_agents(**query)  GET /agents on the lab's registry (with its token) -> agents
    .endpoints        where the services answer (tests/lab/fleet/endpoints.py); shortcuts:
    .tls, .scheme     TLS on (the lab's inventory says so, as `lab up` writes it), "https"/"http"
    .lb_url(path)     the load balancer, e.g. fleet.lb_url("/mcp")
    .agent_url(name, path)  an agent's own listener; .registry_url(path) the registry's
    .ssl_context      verifies the lab's CA (None without TLS): urlopen(url, context=...)
    .ca_file          the lab's CA certificate file (curl --cacert), None without TLS
    .urlopen(url_or_request, timeout=10)  urllib's, with the fleet's ssl context
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.client import HTTPResponse
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.inventory import LAB_BACKUP_IDENTITY, LAB_CLIENTS_VARIABLE, lab_clients, lab_secrets
from mcp_mesh_sdk import __version__
from tests.collection import REPO, Installed, build
from tests.lab.fleet.endpoints import Endpoints

SITE = "playbooks/site.yml"
RECAP_LINE = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=\d+\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counts per host: {"agent1": {"changed": 0, "failed": 0, ...}}."""
    return {
        match["host"]: {key: int(match[key]) for key in ("changed", "unreachable", "failed")}
        for match in RECAP_LINE.finditer(output)
    }


@dataclass
class Fleet:
    lab: Any
    version: str
    tokens: dict[str, str]
    source: Path
    extra_args: list[str]
    clients: dict[str, str]
    endpoints: Endpoints
    collection: Installed
    collection_args: list[str]
    deploy_seconds: float = 0.0
    first_run: subprocess.CompletedProcess[str] | None = field(default=None, repr=False)

    def playbook(self, *args: str, playbook: str = SITE) -> subprocess.CompletedProcess[str]:
        return self.lab.ansible_playbook(playbook, *self.extra_args, *args)

    def collection_playbook(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.collection.playbook(
            "site", "-i", str(self.lab.inventory), *self.collection_args, *args
        )

    def registry_agents(self, **query: str) -> list[dict[str, Any]]:
        """The agents the lab's registry lists for `query` (status=, name=, version=)."""
        request = urllib.request.Request(
            self.registry_url(f"/agents?{urllib.parse.urlencode(query)}"),
            headers={"Authorization": f"Bearer {self.tokens['registry']}"},
        )
        with self.urlopen(request) as response:
            agents: list[dict[str, Any]] = json.loads(response.read())["agents"]
        return agents

    @property
    def load_tokens(self) -> list[str]:
        return [token for name, token in self.clients.items() if name.startswith("load-")]

    @property
    def tls(self) -> bool:
        return self.endpoints.tls

    @property
    def scheme(self) -> str:
        return self.endpoints.scheme

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return self.endpoints.ssl_context

    @property
    def ca_file(self) -> Path | None:
        return self.endpoints.ca_file

    def lb_url(self, path: str = "") -> str:
        return self.endpoints.lb_url(path)

    def agent_url(self, name: str, path: str = "") -> str:
        return self.endpoints.agent_url(name, path)

    def registry_url(self, path: str = "") -> str:
        return self.endpoints.registry_url(path)

    def urlopen(self, url: str | urllib.request.Request, timeout: float = 10) -> HTTPResponse:
        """urllib.request.urlopen verifying the lab's CA when the fleet speaks TLS."""
        response: HTTPResponse = urllib.request.urlopen(
            url, timeout=timeout, context=self.ssl_context
        )
        return response


def _secrets_for(inventory: Path, folder: Path) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """The lab's own secrets and clients when its inventory has them, else fresh random ones in
    a file -> (tokens, clients {name: token}, extra ansible-playbook arguments)."""
    lab_vars = (yaml.safe_load(inventory.read_text())["all"].get("vars")) or {}
    fresh = lab_secrets()
    variables = {
        "agent": "mesh_agent_token",
        "registry": "mesh_registry_token",
        "database": "mesh_common_database_password",
        "backup_identity": LAB_BACKUP_IDENTITY,
    }
    tokens = {
        name: lab_vars.get(variable) or fresh[variable] for name, variable in variables.items()
    }
    clients: list[dict[str, str]] = lab_vars.get(LAB_CLIENTS_VARIABLE) or lab_clients()
    by_name = {str(client["name"]): str(client["token"]) for client in clients}
    if all(variable in lab_vars for variable in (*variables.values(), LAB_CLIENTS_VARIABLE)):
        return tokens, by_name, []
    path = folder / "fleet-secrets.yml"
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(
        yaml.safe_dump(
            {
                **{variable: tokens[name] for name, variable in variables.items()},
                LAB_CLIENTS_VARIABLE: clients,
            }
        )
    )
    return tokens, by_name, ["-e", f"@{path}"]


@pytest.fixture(scope="session")
def fleet(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    folder = tmp_path_factory.mktemp("fleet")
    tokens, clients, secret_args = _secrets_for(lab.inventory, folder)
    # The tarball is the session's snapshot of the source: edits to runtime/ made while the
    # session runs (by a developer, by another lab) cannot turn a "nothing changed" run into a
    # rebuild, and the checkout's playbooks deploy the very source the collection carries.
    collection = Installed.create(build(folder / "build"), folder / "collection")
    source = collection.root
    extra_args = [*secret_args, "-e", f"mesh_common_source_dir={source}"]
    # Where the playbooks write on the controller (wheelhouse cache, backups, reports): the
    # checkout's, as for its own playbooks (the default there), so both share one wheelhouse.
    # Nothing of the collection's content comes from it.
    collection_args = [*secret_args, "-e", f"mesh_common_controller_data_dir={REPO}"]
    endpoints = Endpoints.from_inventory(lab.inventory)
    deployed = Fleet(
        lab,
        __version__,
        tokens,
        source,
        extra_args,
        clients,
        endpoints,
        collection,
        collection_args,
    )
    started = time.monotonic()
    run = deployed.collection_playbook()
    deployed.deploy_seconds = time.monotonic() - started
    deployed.first_run = run
    if run.returncode != 0:
        pytest.fail(
            f"mcp_mesh.ops.site failed (exit {run.returncode}):\n"
            f"{run.stdout[-6000:]}\n{run.stderr[-2000:]}",
            pytrace=False,
        )
    print(f"\nfleet deployed in {deployed.deploy_seconds:.1f} s")
    yield deployed
