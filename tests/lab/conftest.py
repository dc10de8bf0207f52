"""Fixtures for tests against the lab: real systemd hosts (nspawn containers) reached over SSH.

Every test under tests/lab/ is marked `lab` automatically, so `pytest -m "not lab"` runs
without bringing anything up. The interface below is stable; tests in sub-folders (e.g.
tests/lab/fleet/) rely on it:

`lab` (session) -> LabHandle
    .name        the lab's name ("mesh" unless MESH_LAB_NAME says otherwise)
    .inventory   Path of its Ansible inventory (inventories/lab/hosts.yml for "mesh")
    .key         Path of the SSH key root logs in with
    .hosts       {"lb1": "10.231.x.10", "agent1": ..., ...} host name -> address
    .groups      {"loadbalancer": ["lb1"], "registry": ["lb1"], "agents": [...]}
    .controller  this machine's address on the lab bridge (what hosts reach it by)
    .distros     {"lb1": "bookworm", "agent2": "trixie", ...} host name -> Debian release
    .ansible(*args)          run `ansible` against the inventory -> CompletedProcess
    .ansible_playbook(*args) run `ansible-playbook` against the inventory -> CompletedProcess
`all_hosts` (session) -> list of testinfra hosts, one per lab host, in inventory order
`lab_host` (session) -> function: lab_host("agent1") -> that host's testinfra host
`group_hosts` (session) -> function: group_hosts("agents") -> list of testinfra hosts
`lab_host_name` -> each lab host's name in turn (tests that take it run once per host)
`lab_agent_name` -> each agent host's name in turn (group agents)

Environment:
    MESH_LAB_REUSE=1    use the lab that is up (bringing it up if it is not) and leave it up
    MESH_LAB_NAME=NAME  test against another lab than "mesh" (e.g. while "mesh" runs a demo)
    MESH_LAB_AGENTS=N   agents in the lab the fixture brings up (default 3)
    MESH_LAB_AGENT_DISTROS=LIST  releases lb1 and the agents take in turn (default trixie,bookworm:
                        the load balancer and a registry on Debian 13, agents on both, db1 on 12)
    MESH_LAB_DATABASE=0 leave out db1 (default 1: PostgreSQL and a second registry replica, so
                        the suite runs against the registry's production shape)
    MESH_LAB_MONITORING=0 leave out the monitoring group (default 1: site.yml deploys
                        Prometheus and Alertmanager there, tests/lab/fleet/test_monitoring.py)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml

from lab.state import inventory_path
from lab.topology import DEFAULT_AGENTS, DEFAULT_DISTRO, DEFAULT_LAB, host_plan

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
LAB_NAME = os.environ.get("MESH_LAB_NAME", DEFAULT_LAB)
LAB_AGENTS = int(os.environ.get("MESH_LAB_AGENTS", str(DEFAULT_AGENTS)))
LAB_AGENT_DISTROS = os.environ.get("MESH_LAB_AGENT_DISTROS") or "trixie,bookworm"
LAB_DATABASE = os.environ.get("MESH_LAB_DATABASE", "1") == "1"
LAB_MONITORING = os.environ.get("MESH_LAB_MONITORING", "1") == "1"
REUSE = os.environ.get("MESH_LAB_REUSE") == "1"
# The first lab test's set-up may build the base image (a minute or two, more on a slow mirror).
LAB_TEST_TIMEOUT = 900

# testinfra's ansible backend calls `ansible-inventory` from PATH and reads ansible.cfg.
os.environ["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))


def run_lab(*args: str, name: str = LAB_NAME) -> subprocess.CompletedProcess[str]:
    """`python -m lab ARGS --name NAME` from the repo, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "lab", *args, "--name", name],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=LAB_TEST_TIMEOUT,  # `up` may build the base image first
    )


@dataclass
class LabHandle:
    name: str
    inventory: Path
    key: Path
    hosts: dict[str, str]
    groups: dict[str, list[str]]
    controller: str
    distros: dict[str, str] = field(default_factory=dict)
    _testinfra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_inventory(cls, name: str, inventory: Path) -> LabHandle:
        data = yaml.safe_load(inventory.read_text())["all"]
        hosts = {host: str(values["lab_address"]) for host, values in data["hosts"].items()}
        groups = {group: list(body["hosts"]) for group, body in data["children"].items()}
        key = Path(next(iter(data["hosts"].values()))["ansible_ssh_private_key_file"])
        controller = str(data["vars"]["lab_controller_address"])
        distros = {
            host: str(values.get("lab_distro", DEFAULT_DISTRO))
            for host, values in data["hosts"].items()
        }
        return cls(name, inventory, key, hosts, groups, controller, distros)

    def ansible(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self._tool("ansible", *args, timeout=timeout)

    def ansible_playbook(
        self, *args: str, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        return self._tool("ansible-playbook", *args, timeout=timeout)

    def _tool(self, tool: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VENV_BIN / tool), "-i", str(self.inventory), *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def testinfra_host(self, name: str) -> Any:
        if name not in self.hosts:
            raise KeyError(f"lab '{self.name}' has no host '{name}' (it has {sorted(self.hosts)})")
        if name not in self._testinfra:
            self._testinfra[name] = testinfra.get_host(
                f"ansible://{name}", ansible_inventory=str(self.inventory)
            )
        return self._testinfra[name]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.lab)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(LAB_TEST_TIMEOUT))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "lab_host_name" in metafunc.fixturenames:
        metafunc.parametrize("lab_host_name", expected_host_names())
    if "lab_agent_name" in metafunc.fixturenames:
        metafunc.parametrize("lab_agent_name", expected_host_names("agents"))


def expected_host_names(group: str | None = None) -> list[str]:
    """The hosts (of `group`) the session's lab has: a reused lab's inventory, else the default
    topology."""
    inventory = inventory_path(LAB_NAME)
    if REUSE and inventory.exists():
        listed = yaml.safe_load(inventory.read_text())["all"]
        if group is None:
            return list(listed["hosts"])
        return list(listed["children"][group]["hosts"])
    plan = host_plan(LAB_AGENTS, LAB_DATABASE, LAB_MONITORING)
    return [name for name, groups in plan if group is None or group in groups]


@pytest.fixture(scope="session")
def lab() -> Iterator[LabHandle]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (namespaces, mounts, containers)")
    reused = REUSE and run_lab("status").returncode == 0
    if not reused:
        started = run_lab(
            "up",
            "--agents",
            str(LAB_AGENTS),
            "--agent-distros",
            LAB_AGENT_DISTROS,
            "--database" if LAB_DATABASE else "--no-database",
            "--monitoring" if LAB_MONITORING else "--no-monitoring",
        )
        if started.returncode != 0:
            pytest.fail(f"lab up failed:\n{started.stdout}\n{started.stderr}", pytrace=False)
    try:
        yield LabHandle.from_inventory(LAB_NAME, inventory_path(LAB_NAME))
    finally:
        if not REUSE:
            stopped = run_lab("down")
            if stopped.returncode != 0:
                pytest.fail(f"lab down failed:\n{stopped.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def all_hosts(lab: LabHandle) -> list[Any]:
    return [lab.testinfra_host(name) for name in lab.hosts]


@pytest.fixture(scope="session")
def lab_host(lab: LabHandle) -> Callable[[str], Any]:
    return lab.testinfra_host


@pytest.fixture(scope="session")
def group_hosts(lab: LabHandle) -> Callable[[str], list[Any]]:
    def hosts_of(group: str) -> list[Any]:
        if group not in lab.groups:
            raise KeyError(f"lab '{lab.name}' has no group '{group}' (it has {sorted(lab.groups)})")
        return [lab.testinfra_host(name) for name in lab.groups[group]]

    return hosts_of
