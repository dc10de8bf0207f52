"""Which hosts a lab has, their groups and addresses, and the names of its kernel objects.

Pure logic: nothing here touches the machine. Interface names are limited to 15 bytes by
the kernel, which is why lab names are short: `mlb-NAME` is the bridge, `mlv-NAME-I` the
host end of host I's veth pair, `mesh-lab-NAME-HOST` its network namespace.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from lab.errors import LabError

DEFAULT_LAB = "mesh"
DEFAULT_AGENTS = 3
MAX_AGENTS = 64
LAB_NAME = re.compile(r"^[a-z][a-z0-9]{0,7}$")
# /24 subnets are taken from this private range, starting at one derived from the lab name.
SUBNET_POOL = IPv4Network("10.231.0.0/16")
FIRST_HOST_OFFSET = 10  # lb1 is .10, agent1 .11, ...; the controller (bridge) is .1

LOADBALANCER = "loadbalancer"
REGISTRY = "registry"
AGENTS = "agents"
DATABASE = "database"
# Prometheus and Alertmanager (mesh_monitoring) with --monitoring, on db1 when the lab has one,
# else on lb1; without --monitoring an empty group. Either host runs MONITORING_DISTRO: the
# controller fetches their packages from its own apt sources, which are Debian 12's.
MONITORING = "monitoring"
GROUPS = (LOADBALANCER, REGISTRY, AGENTS, DATABASE, MONITORING)
DATABASE_HOST = "db1"

# The Debian releases a host can run, by code name: Debian 12 (the default) and Debian 13.
DEFAULT_DISTRO = "bookworm"
DISTROS = ("bookworm", "trixie")
# The database host runs Debian 12 whatever the agents run: its PostgreSQL 15 is the one the
# mesh_database role installs (Debian 13 ships 17).
DATABASE_DISTRO = "bookworm"
MONITORING_DISTRO = "bookworm"


@dataclass(frozen=True)
class Host:
    name: str
    address: IPv4Address
    groups: tuple[str, ...]
    index: int  # 1-based position; names this host's veth
    distro: str = DEFAULT_DISTRO  # Debian release code name; which base image it boots


@dataclass(frozen=True)
class Topology:
    lab: str
    subnet: IPv4Network
    hosts: tuple[Host, ...]

    @property
    def controller(self) -> IPv4Address:
        """The bridge's address: how the hosts reach the machine running the lab."""
        return self.subnet.network_address + 1

    @property
    def bridge(self) -> str:
        return bridge_name(self.lab)

    def netns(self, host: Host) -> str:
        return netns_name(self.lab, host.name)

    def veth(self, host: Host) -> str:
        return veth_name(self.lab, host.index)

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise LabError(f"lab '{self.lab}' has no host '{name}'")

    @property
    def distros(self) -> tuple[str, ...]:
        """The releases the hosts run, each once, in DISTROS order (one base image each)."""
        used = {host.distro for host in self.hosts}
        return tuple(distro for distro in DISTROS if distro in used)

    def groups(self) -> dict[str, list[str]]:
        """Group name -> host names, every group listed even when empty."""
        members: dict[str, list[str]] = {group: [] for group in GROUPS}
        for host in self.hosts:
            for group in host.groups:
                members.setdefault(group, []).append(host.name)
        return members


def validate_lab_name(name: str) -> str:
    if not LAB_NAME.match(name):
        raise LabError(
            f"lab name '{name}' is not allowed: use 1-8 lower-case letters and digits, "
            "starting with a letter (it becomes part of interface names)"
        )
    return name


def validate_agent_count(agents: int) -> int:
    if not 1 <= agents <= MAX_AGENTS:
        raise LabError(f"--agents must be between 1 and {MAX_AGENTS}, not {agents}")
    return agents


def parse_distros(spec: str | None) -> tuple[str, ...]:
    """`bookworm,trixie` -> ('bookworm', 'trixie'); empty or None -> the default release."""
    if spec is None or not spec.strip():
        return (DEFAULT_DISTRO,)
    names = tuple(part.strip() for part in spec.split(","))
    unknown = [name for name in names if name not in DISTROS]
    if unknown or not all(names):
        shown = ", ".join(repr(name) for name in unknown) or "an empty name"
        raise LabError(
            f"--agent-distros: {shown} is not a release the lab builds; "
            f"use a comma-separated list of {', '.join(DISTROS)}"
        )
    return names


def validate_distros(distros: tuple[str, ...]) -> tuple[str, ...]:
    unknown = sorted(set(distros) - set(DISTROS))
    if unknown:
        raise LabError(
            f"unknown releases {', '.join(unknown)}; the lab builds {', '.join(DISTROS)}"
        )
    return distros


def bridge_name(lab: str) -> str:
    return f"mlb-{lab}"


def veth_prefix(lab: str) -> str:
    return f"mlv-{lab}-"


def veth_name(lab: str, index: int) -> str:
    return f"{veth_prefix(lab)}{index}"


def netns_prefix(lab: str) -> str:
    return f"mesh-lab-{lab}-"


def netns_name(lab: str, host: str) -> str:
    return f"{netns_prefix(lab)}{host}"


def host_plan(
    agents: int, database: bool = False, monitoring: bool = False
) -> list[tuple[str, tuple[str, ...]]]:
    """The default topology: lb1 balances and runs the registry, agent1..N run agents. With
    `database`, db1 (last, so the other hosts keep their addresses) runs PostgreSQL and a
    second registry replica. With `monitoring`, db1 (or lb1 in a lab without one) runs
    Prometheus and Alertmanager too."""
    on_lb1 = (MONITORING,) if monitoring and not database else ()
    plan: list[tuple[str, tuple[str, ...]]] = [("lb1", (LOADBALANCER, REGISTRY, *on_lb1))]
    plan += [(f"agent{number}", (AGENTS,)) for number in range(1, agents + 1)]
    if database:
        on_db1 = (MONITORING,) if monitoring else ()
        plan.append((DATABASE_HOST, (DATABASE, REGISTRY, *on_db1)))
    return plan


def host_distros(
    agents: int, distros: tuple[str, ...] = (DEFAULT_DISTRO,), database: bool = False
) -> list[str]:
    """The release of each host in host_plan order: lb1 runs the first one listed, agents take
    the list in turn (agent1 the first, agent2 the second, ...), so `bookworm,trixie` with
    two agents gives one agent of each; db1 runs DATABASE_DISTRO."""
    if not distros:
        distros = (DEFAULT_DISTRO,)
    ordered = [distros[0]] + [distros[number % len(distros)] for number in range(agents)]
    return ordered + ([DATABASE_DISTRO] if database else [])


def allocate_subnet(
    lab: str, taken: Iterable[IPv4Network], pool: IPv4Network = SUBNET_POOL, prefix: int = 24
) -> IPv4Network:
    """A /24 from the pool that overlaps nothing in `taken`, the same one for a name each time.

    The search starts at a slot derived from the lab name, so two labs usually land on
    different subnets without coordination, and moves on past any subnet already routed.
    """
    candidates = list(pool.subnets(new_prefix=prefix))
    start = int.from_bytes(hashlib.sha256(lab.encode()).digest()[:4], "big") % len(candidates)
    busy = [network for network in taken if network.prefixlen > 0]  # a default route is no clash
    for step in range(len(candidates)):
        candidate = candidates[(start + step) % len(candidates)]
        if not any(candidate.overlaps(network) for network in busy):
            return candidate
    raise LabError(f"every /{prefix} in {pool} is already routed on this machine")


def build_topology(
    lab: str,
    agents: int,
    subnet: IPv4Network,
    agent_distros: tuple[str, ...] = (DEFAULT_DISTRO,),
    database: bool = False,
    monitoring: bool = False,
) -> Topology:
    validate_lab_name(lab)
    validate_agent_count(agents)
    validate_distros(agent_distros)
    plan = host_plan(agents, database, monitoring)
    if monitoring and not database and agent_distros and agent_distros[0] != MONITORING_DISTRO:
        raise LabError(
            f"monitoring runs on lb1 in a lab without a database, and lb1 runs "
            f"{agent_distros[0]}: Prometheus' packages are fetched for the controller's "
            f"{MONITORING_DISTRO}. Add --database (monitoring then runs on db1) or list "
            f"{MONITORING_DISTRO} first in --agent-distros"
        )
    if FIRST_HOST_OFFSET + len(plan) >= subnet.num_addresses - 1:
        raise LabError(f"{subnet} is too small for {len(plan)} hosts")
    distros = host_distros(agents, agent_distros, database)
    hosts = tuple(
        Host(
            name,
            subnet.network_address + FIRST_HOST_OFFSET + position,
            groups,
            position + 1,
            distros[position],
        )
        for position, (name, groups) in enumerate(plan)
    )
    return Topology(lab, subnet, hosts)
