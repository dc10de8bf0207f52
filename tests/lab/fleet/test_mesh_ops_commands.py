"""mesh-ops on the deployed fleet: status (an unreachable host named), restart, logs, health."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from tests.lab.conftest import REPO
from tests.lab.fleet.loadgen import fleet_load

SSH_BACK_AFTER_SECONDS = 25  # the host starts its sshd again by itself, even if this test dies


def mesh_ops(fleet: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mesh_ops", "-i", str(fleet.lab.inventory), *args],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def rows(output: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in output.splitlines()[1:] if line.strip()}


def test_status_prints_a_row_per_agent(fleet: Any) -> None:
    done = mesh_ops(fleet, "status")
    assert done.returncode == 0, done.stderr
    table = rows(done.stdout)
    assert set(table) == set(fleet.lab.groups["agents"])
    for row in table.values():
        assert row[1:5] == [
            fleet.version,
            "yes",
            "yes",
            "yes",
        ]  # version, active, ready, registered


def test_status_names_the_host_whose_sshd_is_stopped_and_shows_the_others(fleet: Any) -> None:
    agents = fleet.lab.groups["agents"]
    silent = fleet.lab.testinfra_host(agents[0])
    scheduled = silent.run(
        f"systemd-run --on-active={SSH_BACK_AFTER_SECONDS}"
        f" --unit=mesh-ops-test-ssh-back-{int(time.time())} systemctl start ssh.service"
    )
    assert scheduled.rc == 0, scheduled.stderr
    try:
        assert silent.run("systemctl stop ssh.service").rc == 0
        done = mesh_ops(fleet, "status")
    finally:
        deadline = time.monotonic() + SSH_BACK_AFTER_SECONDS + 60
        while mesh_ops(fleet, "status").returncode != 0 and time.monotonic() < deadline:
            time.sleep(2)
    assert done.returncode == 1
    assert (
        f"FAILED {agents[0]} ({fleet.lab.hosts[agents[0]]}) did not answer over SSH" in done.stderr
    )
    table = rows(done.stdout)
    assert "unreachable" in " ".join(table[agents[0]])
    for name in agents[1:]:
        assert table[name][1:4] == [fleet.version, "yes", "yes"]


def test_restart_drains_and_loses_no_request_then_logs_and_health_answer(fleet: Any) -> None:
    agent = fleet.lab.groups["agents"][-1]
    before = fleet.lab.testinfra_host(agent).run("systemctl show -p MainPID --value mcp-mesh-sdk")
    with fleet_load(fleet, max_seconds=300, max_requests=20_000) as load:
        restarted = mesh_ops(fleet, "restart", agent)
    assert restarted.returncode == 0, restarted.stderr
    assert f"{agent}: restarted" in restarted.stdout
    assert "Judge the release by its traffic" in restarted.stdout  # the host cycle ran
    after = fleet.lab.testinfra_host(agent).run("systemctl show -p MainPID --value mcp-mesh-sdk")
    assert after.stdout != before.stdout  # a new process
    assert load.samples
    failed = load.failures
    assert failed == [], f"{len(failed)} of {len(load.samples)} calls failed: {failed[:5]}"

    logs = mesh_ops(fleet, "logs", agent, "-n", "20")
    assert logs.returncode == 0, logs.stderr
    assert "ready to serve" in logs.stdout

    health = mesh_ops(fleet, "health")
    assert "FAILED" not in health.stderr, health.stderr
    assert set(rows(health.stdout)) == set(fleet.lab.groups["agents"])
