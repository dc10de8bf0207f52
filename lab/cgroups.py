"""A cgroup of its own for every container.

With `--keep-unit` nspawn runs the container inside the cgroup it was started in (it adds
`payload/` and `supervisor/` below it). Two containers started from one process would share
that subtree and their systemds would trample each other's units (failed units, `degraded`),
so each nspawn is moved, before it executes, into `mcp-mesh-lab/LAB/HOST` of every hierarchy
systemd uses: the cgroup2 one and, on hybrid hosts, the v1 `name=systemd` one.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from pathlib import Path

from lab.errors import LabError
from lab.mounts import PROC_MOUNTS

TOP = "mcp-mesh-lab"


def systemd_hierarchies(table: str) -> list[Path]:
    """Mount points of the cgroup hierarchies systemd tracks processes in, from /proc/mounts."""
    found = []
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        kind, options = fields[2], fields[3].split(",")
        if kind == "cgroup2" or (kind == "cgroup" and "name=systemd" in options):
            found.append(Path(fields[1]))
    return found


def host_cgroups(lab: str, host: str, table: str | None = None) -> list[Path]:
    text = PROC_MOUNTS.read_text() if table is None else table
    return [hierarchy / TOP / lab / host for hierarchy in systemd_hierarchies(text)]


def prepare(lab: str, host: str) -> Callable[[], None]:
    """Create the host's cgroups; the returned function moves the calling process into them.

    It runs in the child between fork and exec (Popen's preexec_fn).
    """
    groups = host_cgroups(lab, host)
    if not groups:
        raise LabError("no cgroup2 or name=systemd hierarchy is mounted; nspawn cannot run")
    for group in groups:
        group.mkdir(parents=True, exist_ok=True)
    procs = [str(group / "cgroup.procs") for group in groups]

    def join() -> None:
        for path in procs:
            with open(path, "w") as handle:  # noqa: PTH123 (runs between fork and exec)
                handle.write(str(os.getpid()))

    return join


def remove(lab: str) -> int:
    """Remove the lab's cgroup trees (deepest first); how many directories went."""
    table = PROC_MOUNTS.read_text()
    removed = 0
    for hierarchy in systemd_hierarchies(table):
        tree = hierarchy / TOP / lab
        if not tree.is_dir():
            continue
        for directory in sorted(_directories(tree), key=lambda p: len(p.parts), reverse=True):
            try:
                directory.rmdir()
                removed += 1
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise LabError(f"cannot remove cgroup {directory}: {exc.strerror}") from exc
        with contextlib.suppress(OSError):  # other labs may still use it
            (hierarchy / TOP).rmdir()
    return removed


def _directories(tree: Path) -> list[Path]:
    return [Path(root) for root, _, _ in os.walk(tree)]
