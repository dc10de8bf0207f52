"""The fleet deployed once per session with playbooks/site.yml on the session's lab.

`fleet` (session) -> Fleet
    .version          runtime version deployed (what the source tree holds)
    .tokens           {"agent": ..., "registry": ..., "backup_identity": ...} secrets the
                      deploy used (never printed)
    .clients          {"alice": token, ..., "load-01": token, ...} mesh_agent_clients deployed
    .load_tokens      the load clients' tokens (load-01..load-48), what the load generators use
    .source           the copy of the source tree (pyproject.toml, runtime/) every run deploys
    .extra_args       arguments every further ansible-playbook run needs (secrets, source)
    .deploy_seconds   wall time of the first deploy
    .playbook(*args)  run playbooks/site.yml again with the same secrets -> CompletedProcess
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
import shutil
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
    deploy_seconds: float = 0.0
    first_run: subprocess.CompletedProcess[str] | None = field(default=None, repr=False)

    def playbook(self, *args: str, playbook: str = SITE) -> subprocess.CompletedProcess[str]:
        return self.lab.ansible_playbook(playbook, *self.extra_args, *args)

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


def _source_snapshot(folder: Path) -> Path:
    """A copy of what the runtime wheel is built from, taken once per session.

    Every run of the session deploys this copy, so edits to runtime/ made while the session
    runs (by a developer, by another lab) cannot turn a "nothing changed" run into a rebuild.
    """
    repo = Path(__file__).resolve().parents[3]
    snapshot = folder / "source"
    snapshot.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(repo / name, snapshot / name)
    shutil.copytree(
        repo / "runtime",
        snapshot / "runtime",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
    )
    return snapshot


@pytest.fixture(scope="session")
def fleet(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    folder = tmp_path_factory.mktemp("fleet")
    tokens, clients, extra_args = _secrets_for(lab.inventory, folder)
    source = _source_snapshot(folder)
    extra_args += ["-e", f"mesh_common_source_dir={source}"]
    endpoints = Endpoints.from_inventory(lab.inventory)
    deployed = Fleet(lab, __version__, tokens, source, extra_args, clients, endpoints)
    started = time.monotonic()
    run = deployed.playbook()
    deployed.deploy_seconds = time.monotonic() - started
    deployed.first_run = run
    if run.returncode != 0:
        pytest.fail(
            f"site.yml failed (exit {run.returncode}):\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}",
            pytrace=False,
        )
    print(f"\nfleet deployed in {deployed.deploy_seconds:.1f} s")
    yield deployed
