"""One host's writable root: an overlay over the shared base, made into that host.

Only the overlay's upper layer is written, so the cached base stays pristine and a host's
changes vanish with `down`.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from lab.errors import LabError
from lab.state import HostPaths
from lab.topology import Host, Topology

CONTROLLER_NAME = "lab-controller"


def mount_overlay(base: Path, host: HostPaths) -> None:
    for directory in (host.upper, host.work, host.root):
        directory.mkdir(parents=True, exist_ok=True)
    options = f"lowerdir={base},upperdir={host.upper},workdir={host.work}"
    done = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, str(host.root)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise LabError(f"cannot mount the overlay for {host.name}: {done.stderr.strip()}")


def render_hosts_file(topology: Topology) -> str:
    """/etc/hosts naming every lab host, so hosts reach each other by name (e.g. `lb1`)."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
        "",
        f"# MCP Mesh lab '{topology.lab}' ({topology.subnet})",
        f"{topology.controller}\t{CONTROLLER_NAME}",
    ]
    lines += [f"{host.address}\t{host.name}" for host in topology.hosts]
    return "\n".join(lines) + "\n"


def personalise(root: Path, host: Host, topology: Topology, public_key: str) -> None:
    """Host name, /etc/hosts, machine id, root's authorized key and the host's own SSH key."""
    etc = root / "etc"
    (etc / "hostname").write_text(host.name + "\n")
    (etc / "hosts").write_text(render_hosts_file(topology))
    (etc / "machine-id").write_text(uuid.uuid4().hex + "\n")
    ssh_dir = root / "root" / ".ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ssh_dir.chmod(0o700)
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(public_key.strip() + "\n")
    authorized.chmod(0o600)
    host_key = etc / "ssh" / "ssh_host_ed25519_key"
    for stale in (host_key, host_key.with_suffix(".pub")):
        stale.unlink(missing_ok=True)
    generate_key(host_key, comment=f"root@{host.name}")


def generate_key(path: Path, comment: str) -> None:
    done = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise LabError(f"ssh-keygen failed for {path}: {done.stderr.strip()}")
