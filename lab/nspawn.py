"""Boot and stop hosts as systemd-nspawn containers with real systemd as PID 1.

There is no system bus on the machine, so nspawn runs with `--register=no --keep-unit`;
stopping is by the PIDs recorded at boot: SIGTERM to nspawn makes it send SIGRTMIN+3 to the
container's systemd (an orderly poweroff); whatever is left after the grace period is killed.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab import cgroups, processes
from lab.errors import LabError
from lab.processes import ProcessRecord
from lab.state import HostPaths

POWEROFF_GRACE = 10.0
KILL_GRACE = 5.0
PROPAGATE_DIR = Path("/run/systemd/nspawn/propagate")


def machine_name(lab: str, host: str) -> str:
    return f"mesh-lab-{lab}-{host}"


def command(lab: str, host: HostPaths, netns: str) -> list[str]:
    return [
        "systemd-nspawn",
        f"--directory={host.root}",
        f"--machine={machine_name(lab, host.name)}",
        f"--hostname={host.name}",
        "--boot",
        "--register=no",
        "--keep-unit",
        f"--network-namespace-path=/run/netns/{netns}",
        "--console=read-only",
        "--link-journal=no",
        "--resolv-conf=off",  # keep the base's: the hosts have no DNS server to reach
        "--settings=no",
        "--quiet",
    ]


def start(lab: str, host: HostPaths, netns: str) -> ProcessRecord:
    """Start nspawn in its own session and cgroup (it outlives this command); record its PID."""
    join_cgroups = cgroups.prepare(lab, host.name)
    with host.console.open("ab") as console:
        child = subprocess.Popen(
            command(lab, host, netns),
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=join_cgroups,  # no threads run while hosts start
        )
    entry = processes.write_record(host.nspawn_pid, child.pid)
    if entry is None:
        raise LabError(f"systemd-nspawn for {host.name} exited at once; see {host.console}")
    return entry


def is_nspawn_of(host: HostPaths) -> Callable[[list[str]], bool]:
    def matches(argv: list[str]) -> bool:
        return (
            bool(argv)
            and argv[0].endswith("systemd-nspawn")
            and (f"--directory={host.root}" in argv)
        )

    return matches


def is_container_init(argv: list[str]) -> bool:
    return bool(argv) and (argv[0].endswith("/systemd") or argv[0].endswith("/init"))


def record_leader(host: HostPaths, nspawn: ProcessRecord, timeout: float = 10.0) -> None:
    """Record the container's PID 1 (as seen from here): nspawn's child once it runs systemd."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _find_leader(host, nspawn) is not None:
            return
        time.sleep(0.02)
    raise LabError(f"{host.name}: systemd did not start inside the container; see {host.console}")


def _find_leader(host: HostPaths, nspawn: ProcessRecord) -> ProcessRecord | None:
    for child in processes.children(nspawn.pid):
        if is_container_init(processes.cmdline(child)):
            return processes.write_record(host.leader_pid, child)
    return None


@dataclass(frozen=True)
class Running:
    """A host's recorded processes that are still the lab's own."""

    host: HostPaths
    nspawn: ProcessRecord | None
    leader: ProcessRecord | None

    def entries(self) -> list[ProcessRecord]:
        return [entry for entry in (self.nspawn, self.leader) if entry is not None]


def running(host: HostPaths) -> Running:
    nspawn = processes.read_record(host.nspawn_pid)
    leader = processes.read_record(host.leader_pid)
    if nspawn is not None and not processes.still_ours(nspawn, is_nspawn_of(host)):
        nspawn = None
    if leader is not None and not processes.still_ours(leader, is_container_init):
        leader = None
    if leader is None and nspawn is not None:  # stopped before its PID 1 was recorded
        leader = _find_leader(host, nspawn)
    return Running(host, nspawn, leader)


def is_up(host: HostPaths) -> bool:
    state = running(host)
    return state.nspawn is not None and state.leader is not None


def stop(hosts: list[HostPaths]) -> None:
    """Power the hosts off together; kill what is left after the grace period; verify."""
    states = [running(host) for host in hosts]
    for state in states:
        if state.nspawn is not None:
            processes.send(state.nspawn, signal.SIGTERM)  # nspawn forwards SIGRTMIN+3
        elif state.leader is not None:  # nspawn died and left its container behind
            processes.send(state.leader, signal.SIGRTMIN + 3)
    entries = [entry for state in states for entry in state.entries()]
    left = processes.wait_gone(entries, POWEROFF_GRACE)
    for state in states:  # the container's PID 1 first: killing it takes the whole container
        for entry in (state.leader, state.nspawn):
            if entry in left:
                processes.send(entry, signal.SIGKILL)
    left = processes.wait_gone(left, KILL_GRACE)
    if left:
        pids = ", ".join(str(entry.pid) for entry in left)
        raise LabError(f"lab processes {pids} did not exit after SIGKILL")
    for host in hosts:
        host.nspawn_pid.unlink(missing_ok=True)
        host.leader_pid.unlink(missing_ok=True)


def propagate_dir(lab: str, host: str) -> Path:
    """What nspawn leaves in /run when it is killed rather than stopped."""
    return PROPAGATE_DIR / machine_name(lab, host)
