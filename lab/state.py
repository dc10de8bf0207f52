"""Where a lab keeps its state (outside the repo) and what it records there.

STATE_ROOT/NAME/lab.json           the topology, written before anything boots
STATE_ROOT/NAME/id_ed25519         the SSH key root logs in with on every host
STATE_ROOT/NAME/ssh-*              shared SSH connections (ControlPath) to the hosts
STATE_ROOT/NAME/tls/ca.pem         the lab's CA certificate (ca-key.pem: its key, 0600)
STATE_ROOT/NAME/hosts/HOST/        upper/ work/ root/ (the overlay), console.log,
                                   nspawn.pid and leader.pid (`PID STARTTIME`)
LOCK_ROOT/NAME.lock                serialises up/down of one lab (in /run: gone at reboot)
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from lab.errors import LabError
from lab.topology import DEFAULT_DISTRO, DEFAULT_LAB, Host, Topology

STATE_ROOT = Path(os.environ.get("MESH_LAB_STATE_DIR", "/var/lib/mcp-mesh-lab"))
LOCK_ROOT = Path(os.environ.get("MESH_LAB_LOCK_DIR", "/run/mcp-mesh-lab"))
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class LabPaths:
    lab: str
    root: Path = STATE_ROOT
    lock_root: Path = LOCK_ROOT

    @property
    def directory(self) -> Path:
        return self.root / self.lab

    @property
    def lock(self) -> Path:
        return self.lock_root / f"{self.lab}.lock"

    @property
    def topology(self) -> Path:
        return self.directory / "lab.json"

    @property
    def key(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def hosts(self) -> Path:
        return self.directory / "hosts"

    def host(self, name: str) -> HostPaths:
        return HostPaths(self.hosts / name)

    def host_dirs(self) -> list[HostPaths]:
        """Every host directory on disk, recorded in lab.json or not (e.g. after a crash)."""
        if not self.hosts.is_dir():
            return []
        return [HostPaths(path) for path in sorted(self.hosts.iterdir()) if path.is_dir()]


@dataclass(frozen=True)
class HostPaths:
    directory: Path

    @property
    def name(self) -> str:
        return self.directory.name

    @property
    def upper(self) -> Path:
        return self.directory / "upper"

    @property
    def work(self) -> Path:
        return self.directory / "work"

    @property
    def root(self) -> Path:
        return self.directory / "root"

    @property
    def console(self) -> Path:
        return self.directory / "console.log"

    @property
    def nspawn_pid(self) -> Path:
        return self.directory / "nspawn.pid"

    @property
    def leader_pid(self) -> Path:
        return self.directory / "leader.pid"


def inventory_path(lab: str, repo: Path = REPO) -> Path:
    """inventories/lab/hosts.yml for the default lab, inventories/lab/NAME.yml for others."""
    name = "hosts" if lab == DEFAULT_LAB else lab
    return repo / "inventories" / "lab" / f"{name}.yml"


@contextmanager
def locked(paths: LabPaths) -> Iterator[None]:
    """One `up` or `down` of a lab at a time; a second waits for the first."""
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.lock_root.mkdir(parents=True, exist_ok=True)
    with paths.lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def save_topology(paths: LabPaths, topology: Topology, bases: dict[str, Path]) -> None:
    """Record the topology and the base image (by release) its hosts boot from."""
    data = {
        "lab": topology.lab,
        "subnet": str(topology.subnet),
        "bases": {distro: str(path) for distro, path in sorted(bases.items())},
        "hosts": [
            {
                "name": host.name,
                "address": str(host.address),
                "groups": list(host.groups),
                "index": host.index,
                "distro": host.distro,
            }
            for host in topology.hosts
        ],
    }
    paths.topology.write_text(json.dumps(data, indent=2) + "\n")


def load_topology(paths: LabPaths) -> Topology | None:
    """The recorded topology, or None when the lab is not up (no or unreadable lab.json)."""
    try:
        data = json.loads(paths.topology.read_text())
        hosts = tuple(
            Host(
                h["name"],
                IPv4Address(h["address"]),
                tuple(h["groups"]),
                int(h["index"]),
                str(h.get("distro", DEFAULT_DISTRO)),  # labs recorded before releases mixed
            )
            for h in data["hosts"]
        )
        return Topology(str(data["lab"]), IPv4Network(data["subnet"]), hosts)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LabError(f"{paths.topology} is unreadable ({exc}); run `lab down` first") from exc
