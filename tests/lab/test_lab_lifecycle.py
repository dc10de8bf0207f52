"""`up` and `down` of a small separately named lab leave nothing behind, even after a crash.

The checks read the machine directly (/proc/mounts, `ip`, /proc/PID/cmdline, cgroupfs)
rather than through the lab's own helpers, so a bug there cannot hide a leak.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest
import yaml

from lab.readiness import ssh_banner
from lab.state import STATE_ROOT, inventory_path

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
LAB = "lctest"
STATE = STATE_ROOT / LAB


def lab_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab", *args, "--name", LAB],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,  # `up` may build the base image first
    )


def up() -> subprocess.CompletedProcess[str]:
    done = lab_command("up", "--agents", "1", "--agent-distros", "bookworm", "--no-database")
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def down() -> None:
    done = lab_command("down")
    assert done.returncode == 0, done.stdout + done.stderr


def nspawn_processes() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"systemd-nspawn") and any(
            str(STATE).encode() + b"/" in arg for arg in argv
        ):
            found.append(int(entry.name))
    return found


def leftovers() -> dict[str, list[str]]:
    """Every piece of the test lab that exists on the machine right now."""
    mounts = [
        line.split()[1]
        for line in Path("/proc/mounts").read_text().splitlines()
        if line.split()[1].startswith(f"{STATE}/")
    ]
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    link_names = [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()]
    return {
        "mounts": mounts,
        "namespaces": [n.split()[0] for n in netns.splitlines() if f"-{LAB}-" in n],
        "links": [n for n in link_names if n.startswith(f"mlv-{LAB}-") or n == f"mlb-{LAB}"],
        "processes": [str(pid) for pid in nspawn_processes()],
        "cgroups": [  # hybrid hosts: one per hierarchy; unified hosts: at the top
            str(p)
            for pattern in (f"*/mcp-mesh-lab/{LAB}", f"mcp-mesh-lab/{LAB}")
            for p in Path("/sys/fs/cgroup").glob(pattern)
        ],
        "state": [str(STATE)] if STATE.exists() else [],
        "inventory": [str(inventory_path(LAB))] if inventory_path(LAB).exists() else [],
    }


def recorded_pids() -> list[int]:
    return [
        int(path.read_text().split()[0])
        for path in sorted(STATE.glob("hosts/*/*.pid"))  # nspawn.pid and leader.pid
    ]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in {"Z", "X"}


def wait_dead(pids: list[int], timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def host_addresses() -> list[str]:
    hosts = yaml.safe_load(inventory_path(LAB).read_text())["all"]["hosts"]
    return [values["ansible_host"] for values in hosts.values()]


@pytest.fixture
def test_lab() -> Iterator[None]:
    """Whatever a test does, the test lab is down afterwards."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (namespaces, mounts, containers)")
    yield
    lab_command("down")


def test_up_then_down_twice_leaves_nothing_behind(test_lab) -> None:
    for _ in range(2):
        up()
        present = leftovers()
        assert len(present["mounts"]) == 2
        assert len(present["namespaces"]) == 2
        assert len(present["links"]) == 3  # a veth per host and the bridge
        assert len(present["processes"]) == 2
        assert present["cgroups"] and present["state"] and present["inventory"]
        pids = recorded_pids()
        assert len(pids) == 4 and all(alive(pid) for pid in pids)
        down()
        assert leftovers() == {key: [] for key in present}
        assert wait_dead(pids, timeout=1) == []


def test_up_on_a_lab_that_is_up_replaces_it(test_lab) -> None:
    up()
    before = recorded_pids()
    up()
    assert wait_dead(before, timeout=1) == []
    assert len(nspawn_processes()) == 2
    assert all(ssh_banner(IPv4Address(address)) for address in host_addresses())


def test_a_host_whose_sshd_never_answers_is_named_and_nothing_is_left(test_lab) -> None:
    env = dict(os.environ, MESH_LAB_SSH_TIMEOUT="0")  # no host can answer in no time
    done = subprocess.run(
        [sys.executable, "-m", "lab", "up", "--agents", "1", "--no-database", "--name", LAB],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,  # `up` may build the base image first
    )
    assert done.returncode == 1
    assert "sshd did not answer within 0s on: lb1, agent1" in done.stderr
    assert "last console lines of lb1" in done.stderr
    assert "Traceback" not in done.stderr
    assert not any(leftovers().values())


@pytest.mark.parametrize("killed", ["nspawn", "nspawn and containers"])
def test_up_after_a_crash_cleans_the_stale_pieces_and_works(test_lab, killed: str) -> None:
    up()
    nspawn_pids = [int(p.read_text().split()[0]) for p in STATE.glob("hosts/*/nspawn.pid")]
    leader_pids = [int(p.read_text().split()[0]) for p in STATE.glob("hosts/*/leader.pid")]
    victims = nspawn_pids + (leader_pids if killed == "nspawn and containers" else [])
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    assert wait_dead(victims) == []
    stale = leftovers()
    assert stale["mounts"] and stale["namespaces"] and stale["state"]
    assert lab_command("status").returncode == 1

    again = up()
    assert "removed what was left of lab 'lctest'" in again.stdout
    assert wait_dead(leader_pids, timeout=1) == []  # orphaned containers were stopped too
    assert lab_command("status").returncode == 0
    assert all(ssh_banner(IPv4Address(address)) for address in host_addresses())
    down()
    assert not any(leftovers().values())


def test_demo_without_a_database_host_keeps_the_registry_on_sqlite(test_lab) -> None:
    """`make demo` on a lab without db1: one registry on lb1, on its SQLite file, and the
    deploy's own verification (every agent registered and healthy) passes."""
    up()
    demo = lab_command("demo")
    assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-2000:]
    assert "failed=0" in demo.stdout
    checked = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible"),
            "lb1",
            "-i",
            str(inventory_path(LAB)),
            "-m",
            "ansible.builtin.shell",
            "-a",
            "test -s /var/lib/mcp-mesh/registry.db"
            " && ! grep -q DATABASE_URL /etc/mcp-mesh/registry.env && echo sqlite-only",
        ],
        cwd=REPO,
        env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "sqlite-only" in checked.stdout, checked.stdout + checked.stderr
    down()
    assert not any(leftovers().values())
