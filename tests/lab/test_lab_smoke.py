"""Every lab host is a healthy systemd host the controller and its peers can reach."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]

SETTLE_SECONDS = 60


def settled_state(host) -> str:
    """`systemctl is-system-running` once boot has finished (bounded wait)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        state = host.run("systemctl is-system-running").stdout.strip()
        if state not in {"initializing", "starting"} or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


def test_systemd_is_running_not_degraded(lab_host, lab_host_name) -> None:
    host = lab_host(lab_host_name)
    state = settled_state(host)
    failed = host.run("systemctl --failed --no-legend --plain").stdout
    assert state == "running", f"{lab_host_name} is {state}; failed units:\n{failed}"


def test_sshd_is_running_and_enabled(lab_host, lab_host_name) -> None:
    ssh = lab_host(lab_host_name).service("ssh")
    assert ssh.is_running
    assert ssh.is_enabled


# What each Debian release the lab builds ships: VERSION_ID and the python3 it installs.
RELEASES = {"bookworm": ("12", "Python 3.11."), "trixie": ("13", "Python 3.13.")}


def test_host_runs_the_release_the_inventory_names(lab, lab_host, lab_host_name) -> None:
    host = lab_host(lab_host_name)
    release = lab.distros[lab_host_name]
    os_release = host.file("/etc/os-release").content_string
    assert f"VERSION_CODENAME={release}" in os_release
    assert f'VERSION_ID="{RELEASES[release][0]}"' in os_release


def test_python_is_the_releases(lab, lab_host, lab_host_name) -> None:
    version = lab_host(lab_host_name).check_output("python3 --version")
    assert version.startswith(RELEASES[lab.distros[lab_host_name]][1])


def test_hostname_matches_the_inventory(lab_host, lab_host_name) -> None:
    host = lab_host(lab_host_name)
    assert host.check_output("hostname") == lab_host_name
    assert host.check_output("cat /etc/hostname") == lab_host_name


def test_host_holds_its_inventory_address(lab, lab_host, lab_host_name) -> None:
    addresses = lab_host(lab_host_name).check_output("ip -4 -o addr show dev eth0")
    assert f"inet {lab.hosts[lab_host_name]}/" in addresses


# Prints one line per failure; run on the host in one go rather than a round trip per peer.
REACH_SCRIPT = """
for target in {targets}; do
  name=${{target%%=*}}; address=${{target#*=}}
  ping -c1 -W2 "$address" >/dev/null || echo "$name by address $address"
  resolved=$(getent hosts "$name" | cut -d' ' -f1)
  [ "$resolved" = "$address" ] || echo "$name by name: resolves to '$resolved'"
  ping -c1 -W2 "$name" >/dev/null || echo "$name by name: no answer"
done
"""


def test_reaches_every_other_host_by_address_and_by_name(lab, lab_host, lab_host_name) -> None:
    peers = [f"{name}={address}" for name, address in lab.hosts.items() if name != lab_host_name]
    assert peers, "a lab has at least two hosts"
    done = lab_host(lab_host_name).run(REACH_SCRIPT.format(targets=" ".join(peers)))
    assert done.rc == 0, done.stderr
    assert done.stdout.strip() == "", f"{lab_host_name} cannot reach:\n{done.stdout}"


def test_hosts_reach_the_controller_but_have_no_route_outside(lab, lab_host, lab_host_name) -> None:
    host = lab_host(lab_host_name)
    assert host.run(f"ping -c1 -W2 {lab.controller}").rc == 0
    assert "default" not in host.check_output("ip -4 route show")


def test_groups_are_the_default_topology(lab) -> None:
    agents = [name for name in lab.hosts if name.startswith("agent")]
    assert lab.groups["loadbalancer"] == ["lb1"]
    assert lab.groups["registry"] == ["lb1", *lab.groups["database"]]
    assert lab.groups["database"] in ([], ["db1"])
    assert lab.groups["agents"] == agents
    assert len(agents) >= 1


def test_ansible_reaches_every_host_through_the_inventory(lab) -> None:
    done = lab.ansible("all", "-m", "ansible.builtin.ping", "-o")
    assert done.returncode == 0, done.stdout + done.stderr
    for name in lab.hosts:
        assert f"{name} | SUCCESS" in done.stdout


def test_status_lists_every_host_up(lab) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lab", "status", "--name", lab.name],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout
    for name, address in lab.hosts.items():
        row = next(line for line in done.stdout.splitlines() if line.split()[:1] == [name])
        assert row.split()[1] == address
        assert row.split()[-1] == "up"


def test_demo_facts_table_has_a_row_per_host(lab) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lab",
            "demo",
            "--name",
            lab.name,
            "--playbook",
            "playbooks/lab_facts.yml",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name, address in lab.hosts.items():
        row = next(line for line in done.stdout.splitlines() if line.split()[:1] == [name])
        assert address in row
        assert f"Debian {RELEASES[lab.distros[name]][0]}" in row
        assert row.split()[-1] == "running"
