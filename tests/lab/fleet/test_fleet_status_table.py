"""The fleet table `make demo` ends with: one row per agent, every column healthy."""

from __future__ import annotations


def test_fleet_table_has_a_healthy_row_per_agent(fleet, lab) -> None:
    done = fleet.playbook(playbook="playbooks/fleet_status.yml")
    assert done.returncode == 0, done.stdout[-3000:]
    rows = {
        line.split()[1]: line.split()[1:]
        for line in done.stdout.splitlines()
        if line.strip().startswith("- agent")
    }
    assert set(rows) == set(lab.groups["agents"])
    for host, (_, version, service, ready, registry, balancer) in rows.items():
        assert version != "-", host
        assert (service, ready, registry, balancer) == ("active", "yes", "healthy", "UP"), host
