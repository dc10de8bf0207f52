"""Rolling upgrade and rollback on the session's fleet, under load through the load balancer.

In order, on one deployed fleet: v1 -> v2 (same code, one more migration) while requests flow,
rollback.yml back to v1 under the same load, then an upgrade to a release whose agent never
becomes ready: the first agent is rolled back, the others are never touched. The fleet ends
on the session's version.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.lab.fleet.loadgen import LoadGenerator
from tests.lab.fleet.releases import add_migration, break_serve, bump_patch, source_with_version

UPGRADE = "playbooks/upgrade.yml"
ROLLBACK = "playbooks/rollback.yml"
MARKER = "upgrade-test-marker"
MIN_RATE = 20.0  # requests per second the load must reach


@dataclass(frozen=True)
class Releases:
    v1: str
    v2: str
    v2_source: Path
    v2_migration: str
    broken: str
    broken_source: Path


@pytest.fixture(scope="module")
def releases(fleet: Any, tmp_path_factory: pytest.TempPathFactory) -> Releases:
    folder = tmp_path_factory.mktemp("upgrade")
    v2, broken = bump_patch(fleet.version, 1), bump_patch(fleet.version, 2)
    v2_source = source_with_version(fleet.source, folder, v2)
    migration = add_migration(v2_source, MARKER)
    broken_source = source_with_version(fleet.source, folder, broken)
    break_serve(broken_source)
    return Releases(fleet.version, v2, v2_source, migration, broken, broken_source)


@pytest.fixture
def load(fleet: Any) -> Iterator[LoadGenerator]:
    lb = fleet.lab.groups["loadbalancer"][0]
    url = f"http://{fleet.lab.hosts[lb]}:80/health"
    with LoadGenerator(url, rate=25.0, threads=4, max_seconds=400, max_requests=12_000) as gen:
        yield gen


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def served_versions(fleet: Any) -> dict[str, str]:
    return {
        name: get_json(f"http://{fleet.lab.hosts[name]}:8080/health")["version"]
        for name in fleet.lab.groups["agents"]
    }


def registry_versions(fleet: Any) -> dict[str, str]:
    registry = fleet.lab.hosts[fleet.lab.groups["registry"][0]]
    agents = get_json(f"http://{registry}:8000/agents?status=healthy")["agents"]
    return {agent["name"]: agent["version"] for agent in agents}


def current_release(host: Any) -> str:
    return str(host.file("/opt/mcp-mesh/current").linked_to).rsplit("/", 1)[-1]


def agent_started_at(host: Any) -> str:
    return str(
        host.check_output("systemctl show -P ActiveEnterTimestampMonotonic mcp-mesh-sdk.service")
    )


def assert_no_dropped_requests(load: LoadGenerator) -> None:
    load.__exit__()
    assert load.samples, "the load generator sent nothing"
    assert not load.failures, f"{len(load.failures)} failed requests, e.g. {load.failures[:3]}"
    assert load.rate_achieved >= MIN_RATE, f"load reached only {load.rate_achieved:.1f} req/s"


def test_upgrade_to_the_next_version_under_load_drops_no_request(
    fleet: Any, releases: Releases, load: LoadGenerator, group_hosts: Any
) -> None:
    run = fleet.playbook(
        "-e",
        f"mesh_common_source_dir={releases.v2_source}",
        "-e",
        f"mesh_agent_version={releases.v2}",
        playbook=UPGRADE,
    )
    assert run.returncode == 0, run.stdout[-6000:]
    assert_no_dropped_requests(load)
    agents = fleet.lab.groups["agents"]
    assert served_versions(fleet) == dict.fromkeys(agents, releases.v2)
    assert {name: registry_versions(fleet).get(name) for name in agents} == dict.fromkeys(
        agents, releases.v2
    )
    for host in group_hosts("agents"):
        applied = json.loads(host.file("/var/lib/mcp-mesh/applied_migrations.json").content_string)
        assert releases.v2_migration in applied
        assert host.file(f"/var/lib/mcp-mesh/{MARKER}").exists


def test_rollback_to_the_previous_release_under_load_drops_no_request(
    fleet: Any, releases: Releases, load: LoadGenerator, group_hosts: Any
) -> None:
    run = fleet.playbook(playbook=ROLLBACK)
    assert run.returncode == 0, run.stdout[-6000:]
    assert_no_dropped_requests(load)
    agents = fleet.lab.groups["agents"]
    assert served_versions(fleet) == dict.fromkeys(agents, releases.v1)
    assert {name: registry_versions(fleet).get(name) for name in agents} == dict.fromkeys(
        agents, releases.v1
    )
    for host in group_hosts("agents"):
        applied = json.loads(host.file("/var/lib/mcp-mesh/applied_migrations.json").content_string)
        assert releases.v2_migration not in applied  # migrated back by the newer release
        assert not host.file(f"/var/lib/mcp-mesh/{MARKER}").exists


def test_upgrade_to_a_release_that_never_gets_ready_rolls_back_the_first_host_only(
    fleet: Any, releases: Releases, load: LoadGenerator, lab_host: Any
) -> None:
    first, *others = fleet.lab.groups["agents"]
    before = {name: agent_started_at(lab_host(name)) for name in others}
    run = fleet.playbook(
        "-e",
        f"mesh_common_source_dir={releases.broken_source}",
        "-e",
        f"mesh_agent_version={releases.broken}",
        playbook=UPGRADE,
    )
    assert run.returncode != 0
    message = f"{first}: upgrade to {releases.broken} failed at step"
    assert message in run.stdout, run.stdout[-6000:]
    assert f"rolled back to {releases.v1}" in run.stdout
    assert_no_dropped_requests(load)
    assert served_versions(fleet) == dict.fromkeys(fleet.lab.groups["agents"], releases.v1)
    assert current_release(lab_host(first)) == releases.v1
    for name in others:
        assert current_release(lab_host(name)) == releases.v1
        assert agent_started_at(lab_host(name)) == before[name], f"{name} was restarted"
    # The registry took the new release (only the agent's serve is broken): put it back.
    registry = fleet.playbook(
        "--limit", "registry", "-e", f"mesh_agent_version={releases.v1}", playbook=ROLLBACK
    )
    assert registry.returncode == 0, registry.stdout[-4000:]
