"""`up`, `down` and `status` of a lab: the steps, in order, and the clean-up of stale pieces.

Clean-up never trusts lab.json alone: after a crash it finds the lab's pieces on the machine
by their names (namespaces `mesh-lab-NAME-*`, veths `mlv-NAME-*`, bridge `mlb-NAME`, mounts
under the state directory) and its processes by the PID files each host directory holds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab import cgroups, network, nspawn, processes
from lab.base_image import ensure_base, prune_other_bases
from lab.errors import LabError
from lab.hostroot import generate_key, mount_overlay, personalise
from lab.inventory import write_inventory
from lab.mounts import mounts_under, remove_tree, unmount_all
from lab.readiness import ssh_banner, wait_for_ssh
from lab.state import REPO, LabPaths, inventory_path, load_topology, locked, save_topology
from lab.tls import LabCa
from lab.topology import (
    DEFAULT_DISTRO,
    DISTROS,
    Topology,
    allocate_subnet,
    bridge_name,
    build_topology,
    host_distros,
    netns_prefix,
    validate_agent_count,
    validate_distros,
    validate_lab_name,
    veth_prefix,
)

SSH_TIMEOUT = float(os.environ.get("MESH_LAB_SSH_TIMEOUT", "60"))
FACT_CACHE = REPO / ".cache" / "ansible-facts"
NETNS_SETTLE = 3.0

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class UpResult:
    topology: Topology
    inventory: Path
    key: Path
    seconds: float


def up(
    lab: str,
    agents: int,
    say: Say = _quiet,
    agent_distros: tuple[str, ...] = (DEFAULT_DISTRO,),
    database: bool = False,
    monitoring: bool = False,
) -> UpResult:
    """Boot the lab from scratch (removing whatever is left of it first) and write its inventory.

    `agent_distros` lists the Debian releases the agents take in turn (lb1 runs the first);
    each release's base image is built once and cached. `database` adds db1 (PostgreSQL and a
    second registry replica); `monitoring` puts lb1 in the monitoring group (mesh_monitoring).
    """
    validate_lab_name(lab)
    validate_agent_count(agents)
    started = time.monotonic()
    distros = host_distros(agents, validate_distros(agent_distros), database)
    bases = {distro: ensure_base(distro) for distro in DISTROS if distro in distros}
    paths = LabPaths(lab)
    with locked(paths):
        stale = clean(paths)
        if stale:
            say(f"removed what was left of lab '{lab}': {'; '.join(stale)}")
        for old in prune_other_bases(bases.values()):
            say(f"removed unused base image {old}")
        subnet = allocate_subnet(lab, network.routed_networks())
        topology = build_topology(lab, agents, subnet, agent_distros, database, monitoring)
        paths.hosts.mkdir(parents=True)
        save_topology(paths, topology, bases)
        try:
            _boot(paths, topology, bases)
            inventory = inventory_path(lab)
            ca = LabCa.create(lab)
            ca.write(paths.directory)
            write_inventory(inventory, topology, paths.key, ca)
        except LabError as failure:
            _clean_after_failure(paths, failure)
            raise
        except BaseException:  # interrupted: leave nothing half-built behind
            clean(paths)
            raise
        _forget_cached_facts(topology)
    return UpResult(topology, inventory, paths.key, time.monotonic() - started)


def _boot(paths: LabPaths, topology: Topology, bases: dict[str, Path]) -> None:
    generate_key(paths.key, comment=f"mesh-lab-{topology.lab}")
    public_key = paths.key.with_name(paths.key.name + ".pub").read_text()
    network.create_bridge(topology.bridge, topology.controller, topology.subnet)
    for host in topology.hosts:
        host_paths = paths.host(host.name)
        mount_overlay(bases[host.distro], host_paths)
        personalise(host_paths.root, host, topology, public_key)
        network.create_host_network(
            topology.netns(host),
            topology.veth(host),
            topology.bridge,
            host.address,
            topology.subnet,
        )
    started = {
        host.name: nspawn.start(topology.lab, paths.host(host.name), topology.netns(host))
        for host in topology.hosts
    }

    for host in topology.hosts:  # before anything can fail: `down` must reach every PID 1
        nspawn.record_leader(paths.host(host.name), started[host.name])

    def still_booting(name: str) -> bool:
        return processes.still_ours(started[name], nspawn.is_nspawn_of(paths.host(name)))

    late = wait_for_ssh(
        ((host.name, host.address) for host in topology.hosts), SSH_TIMEOUT, still_booting
    )
    if late:
        raise LabError(_not_up_message(paths, late))


def _clean_after_failure(paths: LabPaths, failure: LabError) -> None:
    try:
        clean(paths)
    except LabError as cleanup:
        raise LabError(f"{failure}\nremoving the half-built lab failed too: {cleanup}") from failure


def _not_up_message(paths: LabPaths, late: list[str]) -> str:
    lines = [f"sshd did not answer within {SSH_TIMEOUT:g}s on: {', '.join(late)}"]
    for name in late:
        console = paths.host(name).console
        tail = console.read_text(errors="replace").splitlines()[-8:] if console.exists() else []
        lines.append(f"--- last console lines of {name}:")
        lines += [f"    {line}" for line in tail] or ["    (no console output)"]
    return "\n".join(lines)


def down(lab: str) -> list[str]:
    """Stop the lab and remove every piece of it; the pieces removed, for the operator."""
    validate_lab_name(lab)
    paths = LabPaths(lab)
    with locked(paths):
        topology = _topology_or_none(paths)
        removed = clean(paths)
        if topology is not None:
            _forget_cached_facts(topology)
    return removed


def _topology_or_none(paths: LabPaths) -> Topology | None:
    try:
        return load_topology(paths)
    except LabError:
        return None


def clean(paths: LabPaths) -> list[str]:
    """Remove every piece of the lab that exists, in dependency order; say what went."""
    lab = paths.lab
    removed: list[str] = []
    _close_shared_connections(paths)
    hosts = paths.host_dirs()
    alive = [host for host in hosts if nspawn.running(host).entries()]
    if alive:
        nspawn.stop(alive)
        removed.append("containers " + ", ".join(host.name for host in alive))
    mounted = mounts_under(paths.directory)
    if mounted:
        unmount_all(paths.directory)
        removed.append(_count(len(mounted), "overlay mount"))
    # veths first (each takes its peer in the namespace along), then namespaces, then bridge
    veths = [
        name
        for name in network.link_names()
        if name.startswith(veth_prefix(lab)) and network.delete_link(name)
    ]
    if veths:
        removed.append(_count(len(veths), "veth pair"))
    namespaces = [name for name in network.netns_names() if name.startswith(netns_prefix(lab))]
    for name in namespaces:
        _ensure_namespace_empty(name)
        network.delete_netns(name)
    if namespaces:
        removed.append(_count(len(namespaces), "network namespace"))
    if network.delete_link(bridge_name(lab)):
        removed.append(f"bridge {bridge_name(lab)}")
    if cgroups.remove(lab):
        removed.append("cgroups")
    for host in hosts:
        leftover = nspawn.propagate_dir(lab, host.name)
        if leftover.is_dir() and not mounts_under(leftover):
            shutil.rmtree(leftover)
    if paths.directory.exists():
        remove_tree(paths.directory)
        removed.append(f"state {paths.directory}")
    inventory = inventory_path(lab)
    if inventory.exists():
        inventory.unlink()
        removed.append(f"inventory {inventory}")
    return removed


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _close_shared_connections(paths: LabPaths) -> None:
    """Ask the SSH masters behind the lab's control sockets to exit (via the socket, not a PID)."""
    if not paths.directory.is_dir():
        return
    for socket_path in paths.directory.glob("ssh-*"):
        with contextlib.suppress(subprocess.TimeoutExpired):  # a hung master dies with its host
            subprocess.run(
                ["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "lab-host"],
                capture_output=True,
                timeout=5,
            )


def _ensure_namespace_empty(netns: str) -> None:
    """Refuse to drop a namespace that processes the lab did not record still use."""
    deadline = time.monotonic() + NETNS_SETTLE
    while True:
        users = processes.in_network_namespace(Path(network.NETNS_DIR) / netns)
        if not users or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    if users:
        raise LabError(
            f"processes {', '.join(map(str, users))} still run in namespace {netns} but are not "
            "recorded by the lab; stop them (they are not killed by name), then run `down` again"
        )


def _forget_cached_facts(topology: Topology) -> None:
    """Facts Ansible cached for an earlier lab's hosts of the same names are now wrong."""
    for host in topology.hosts:
        (FACT_CACHE / host.name).unlink(missing_ok=True)


@dataclass(frozen=True)
class HostStatus:
    name: str
    address: str
    groups: tuple[str, ...]
    up: bool
    distro: str = DEFAULT_DISTRO


def status(lab: str) -> list[HostStatus] | None:
    """Each recorded host and whether its container runs and its sshd answers; None: no lab."""
    validate_lab_name(lab)
    paths = LabPaths(lab)
    topology = load_topology(paths)
    if topology is None:
        return None
    return [
        HostStatus(
            host.name,
            str(host.address),
            host.groups,
            nspawn.is_up(paths.host(host.name)) and ssh_banner(host.address) is not None,
            host.distro,
        )
        for host in topology.hosts
    ]
