"""Rolling upgrades that judge the release, and rollback, on the session's fleet.

MCP clients write and read through the load balancer (at least 20 tool calls/s) for the whole
of each run. In order, on one deployed fleet:
- v1 -> v2 (same code, one more migration): every host passes its smoke test and its traffic
  analysis, no client call fails, and the summary names each host;
- rollback.yml back to v1: the same cycle, no client call fails;
- bad releases, each stopped on the first host, rolled back there, the others never touched:
  a `write_file` that raises (caught by the smoke test before any client call reaches it), one
  that raises for clients only (caught by the traffic analysis, failed calls at most 2 %), 0.5 s
  more on every tool call (caught by latency), a `tools/list` without `file_info` (caught by
  the smoke test), and an agent that never becomes ready.
The fleet ends on the session's version.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.lab.fleet.loadgen import McpLoad, fleet_load
from tests.lab.fleet.releases import (
    add_migration,
    break_serve,
    break_tool,
    bump_patch,
    drop_tool,
    slow_tools,
    source_with_version,
)

UPGRADE = "playbooks/upgrade.yml"
ROLLBACK = "playbooks/rollback.yml"
MARKER = "upgrade-test-marker"
MIN_RATE = 20.0  # tool calls per second the load must reach
MAX_FAILED_RATIO = 0.02  # failed client calls of all calls while a bad release is stopped


@dataclass(frozen=True)
class Releases:
    v1: str
    v2: str
    v2_source: Path
    v2_migration: str
    broken: str
    broken_source: Path
    folder: Path


@pytest.fixture(scope="module")
def releases(fleet: Any, tmp_path_factory: pytest.TempPathFactory) -> Releases:
    folder = tmp_path_factory.mktemp("upgrade")
    v2, broken = bump_patch(fleet.version, 1), bump_patch(fleet.version, 2)
    v2_source = source_with_version(fleet.source, folder, v2)
    migration = add_migration(v2_source, MARKER)
    broken_source = source_with_version(fleet.source, folder, broken)
    break_serve(broken_source)
    return Releases(fleet.version, v2, v2_source, migration, broken, broken_source, folder)


@pytest.fixture
def load(fleet: Any) -> Iterator[McpLoad]:
    """MCP tool calls through the load balancer for the whole test (bounded)."""
    with fleet_load(fleet, max_seconds=400, max_requests=12_000) as gen:
        yield gen


def get_json(fleet: Any, url: str) -> Any:
    with fleet.urlopen(url) as response:
        return json.loads(response.read())


def served_versions(fleet: Any) -> dict[str, str]:
    return {
        name: get_json(fleet, fleet.agent_url(name, "/health"))["version"]
        for name in fleet.lab.groups["agents"]
    }


def registry_versions(fleet: Any) -> dict[str, str]:
    return {agent["name"]: agent["version"] for agent in fleet.registry_agents(status="healthy")}


def current_release(host: Any) -> str:
    return str(host.file("/opt/mcp-mesh/current").linked_to).rsplit("/", 1)[-1]


def agent_started_at(host: Any) -> str:
    return str(
        host.check_output("systemctl show -P ActiveEnterTimestampMonotonic mcp-mesh-sdk.service")
    )


def stop(load: McpLoad) -> None:
    load.__exit__()
    assert load.samples, "the load generator sent nothing"
    assert load.rate_achieved >= MIN_RATE, f"load reached only {load.rate_achieved:.1f} calls/s"


def assert_no_failed_calls(load: McpLoad) -> None:
    stop(load)
    assert not load.failures, f"{len(load.failures)} failed calls, e.g. {load.failures[:3]}"


def summary_rows(run: Any) -> dict[str, str]:
    """The rows of the per-host summary the playbook printed last, by host."""
    lines = [line.strip().removeprefix("- ").strip("'\",") for line in run.stdout.splitlines()]
    header = max(i for i, line in enumerate(lines) if line.startswith("HOST ") and "SMOKE" in line)
    rows = []
    for line in lines[header + 1 :]:
        if not line or line.startswith(("PLAY", "TASK", "]", "}")):
            break
        rows.append(line)
    return {row.split()[0]: row for row in rows}


def assert_every_agent_passed(fleet: Any, run: Any) -> None:
    """Each agent's summary row: smoke test passed, analysis passed."""
    rows = summary_rows(run)
    for name in fleet.lab.groups["agents"]:
        assert name in rows, run.stdout[-3000:]
        cells = rows[name].split()
        assert cells[2:5] == ["passed", cells[3], "pass"], rows[name]  # smoke, analysis


def upgrade_agents_to(fleet: Any, folder: Path, version: str, change: Any) -> Any:
    """Upgrade the agents (not the registry) to a bad release made from the session's source.

    The analysis window is 30 s, not 10: each gate stops its release early, so the window only
    bounds how long thin canary traffic (a few of the 48 clients hash to a 25 % server) may
    take to show it; the verdict must not hang on how the clients happened to hash."""
    source = source_with_version(fleet.source, folder, version)
    change(source)
    return fleet.playbook(
        "--limit", "agents", "-e", f"mesh_common_source_dir={source}",
        "-e", f"mesh_agent_version={version}", "-e", "mesh_upgrade_analysis_seconds=30",
        playbook=UPGRADE,
    )  # fmt: skip


def assert_stopped_on_the_first_host(
    fleet: Any, run: Any, version: str, v1: str, lab_host: Any, before: dict[str, str]
) -> str:
    """The run failed on the first agent, which is back on v1 and healthy; the others were
    never restarted. Returns the failure message line."""
    first, *others = fleet.lab.groups["agents"]
    assert run.returncode != 0
    lines = [line for line in run.stdout.splitlines() if f"{first}: upgrade to {version}" in line]
    assert lines, run.stdout[-6000:]
    assert f"back on {v1}, healthy and enabled again" in lines[0]
    assert served_versions(fleet) == dict.fromkeys(fleet.lab.groups["agents"], v1)
    assert get_json(fleet, fleet.agent_url(first, "/ready"))["status"] == "ready"
    assert get_json(fleet, fleet.agent_url(first, "/health"))["status"] == "healthy"
    assert current_release(lab_host(first)) == v1
    for name in others:
        assert current_release(lab_host(name)) == v1
        assert agent_started_at(lab_host(name)) == before[name], f"{name} was restarted"
    return lines[0]


def test_upgrade_to_a_healthy_release_passes_every_host_with_no_failed_call(
    fleet: Any, releases: Releases, load: McpLoad, group_hosts: Any
) -> None:
    run = fleet.playbook(
        "-e",
        f"mesh_common_source_dir={releases.v2_source}",
        "-e",
        f"mesh_agent_version={releases.v2}",
        playbook=UPGRADE,
    )
    assert run.returncode == 0, run.stdout[-6000:]
    assert_no_failed_calls(load)
    agents = fleet.lab.groups["agents"]
    assert_every_agent_passed(fleet, run)
    assert served_versions(fleet) == dict.fromkeys(agents, releases.v2)
    assert {name: registry_versions(fleet).get(name) for name in agents} == dict.fromkeys(
        agents, releases.v2
    )
    for host in group_hosts("agents"):
        applied = json.loads(host.file("/var/lib/mcp-mesh/applied_migrations.json").content_string)
        assert releases.v2_migration in applied
        assert host.file(f"/var/lib/mcp-mesh/{MARKER}").exists


def test_rollback_runs_the_same_cycle_with_no_failed_call(
    fleet: Any, releases: Releases, load: McpLoad, group_hosts: Any
) -> None:
    run = fleet.playbook(playbook=ROLLBACK)
    assert run.returncode == 0, run.stdout[-6000:]
    assert_no_failed_calls(load)
    assert_every_agent_passed(fleet, run)
    agents = fleet.lab.groups["agents"]
    assert served_versions(fleet) == dict.fromkeys(agents, releases.v1)
    assert {name: registry_versions(fleet).get(name) for name in agents} == dict.fromkeys(
        agents, releases.v1
    )
    for host in group_hosts("agents"):
        applied = json.loads(host.file("/var/lib/mcp-mesh/applied_migrations.json").content_string)
        assert releases.v2_migration not in applied  # migrated back by the newer release
        assert not host.file(f"/var/lib/mcp-mesh/{MARKER}").exists


@dataclass(frozen=True)
class BadRelease:
    """A release that must be stopped on the first host, and by which gate."""

    patch: int  # its version: the session's patch + this (unique among the lab tests' releases)
    change: Callable[[Path], None]
    gate: tuple[str, ...]  # what the failure message must name
    max_failed_ratio: float  # of all client calls during the run


BAD_RELEASES = {
    # Every write fails: the smoke test writes a file, so it stops the release before traffic.
    "write_file raises": BadRelease(
        11, lambda source: break_tool(source, "write_file"),
        ("step 'smoke' failed", "write_file", "RuntimeError"), 0.0,
    ),
    # Every client's write fails, the smoke test's works: the traffic analysis stops it early.
    "write_file raises past the smoke test": BadRelease(
        14, lambda source: break_tool(source, "write_file", spare=".mcp-mesh-smoke"),
        ("server-error ratio", "on the baseline"), MAX_FAILED_RATIO,
    ),
    # Slow, not failing: latency against the baseline stops it; no client call fails.
    "0.5 s slower": BadRelease(
        12, lambda source: slow_tools(source, 0.5), ("p95 latency", "on the baseline"), 0.0
    ),
    # tools/list lacks a tool: the smoke test stops it before any client call reaches it.
    "a tool missing": BadRelease(
        13, lambda source: drop_tool(source, "file_info"), ("step 'smoke' failed", "file_info"),
        0.0,
    ),
}  # fmt: skip


@pytest.mark.parametrize("bad", BAD_RELEASES.values(), ids=BAD_RELEASES.keys())
def test_a_bad_release_is_stopped_on_the_first_host_by_its_gate(
    fleet: Any, releases: Releases, load: McpLoad, lab_host: Any, bad: BadRelease
) -> None:
    others = fleet.lab.groups["agents"][1:]
    before = {name: agent_started_at(lab_host(name)) for name in others}
    version = bump_patch(fleet.version, bad.patch)
    run = upgrade_agents_to(fleet, releases.folder, version, bad.change)
    stop(load)
    message = assert_stopped_on_the_first_host(fleet, run, version, releases.v1, lab_host, before)
    assert all(part in message for part in bad.gate), message
    print(f"\n{message}\nfailed calls: {len(load.failures)} of {len(load.samples)}")
    assert load.failure_ratio <= bad.max_failed_ratio, (
        f"{len(load.failures)} of {len(load.samples)} calls failed: {load.failures[:3]}"
    )


def test_upgrade_to_a_release_that_never_gets_ready_rolls_back_the_first_host_only(
    fleet: Any, releases: Releases, load: McpLoad, lab_host: Any
) -> None:
    others = fleet.lab.groups["agents"][1:]
    before = {name: agent_started_at(lab_host(name)) for name in others}
    run = fleet.playbook(
        "-e",
        f"mesh_common_source_dir={releases.broken_source}",
        "-e",
        f"mesh_agent_version={releases.broken}",
        playbook=UPGRADE,
    )
    assert_no_failed_calls(load)
    assert_stopped_on_the_first_host(fleet, run, releases.broken, releases.v1, lab_host, before)
    # The registry took the new release (only the agent's serve is broken): put it back.
    registry = fleet.playbook(
        "--limit", "registry", "-e", f"mesh_agent_version={releases.v1}", playbook=ROLLBACK
    )
    assert registry.returncode == 0, registry.stdout[-4000:]
