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
    # the table of `mesh-ops status` (mesh_ops.status renders both)
    for host, (_, version, active, ready, registered, _, _, balancer) in rows.items():
        assert version != "-", host
        assert (active, ready, registered, balancer) == ("yes", "yes", "yes", "UP"), host
    assert "- fleet healthy" in done.stdout
