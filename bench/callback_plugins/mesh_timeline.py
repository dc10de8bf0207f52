"""Ansible callback: one JSON line per task and host, with wall-clock start and end.

Enable with `ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins` and
`ANSIBLE_CALLBACKS_ENABLED=mesh_timeline`; lines go to the file named by
`MESH_TIMELINE_FILE` (nothing is written when it is unset). Times are `time.time()`, so a
benchmark can line them up with its own samples. Fields: task, host, start, end, status
(ok, changed, failed, skipped, unreachable).

CPU samples: with `MESH_TIMELINE_CPU_FILE` set, one more JSON line at the start of every task
(handlers too) and at the end of the run: `task` (the task starting, `None` at the end), `t`,
`busy`/`total` jiffies of /proc/stat, `controller_us` (CPU time of this process's cgroup v2
group: ansible-playbook, its workers and the ssh connections it spawned, when the benchmark
started it in a group of its own) and `hosts_us` (each lab host's CPU time, from the cgroup v2
directory `MESH_TIMELINE_HOST_CGROUPS`, one subdirectory per host). The difference between two
samples is what the task between them cost.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: mesh_timeline
type: aggregate
short_description: per-task, per-host wall-clock times (and CPU samples) as JSON lines
description:
  - Writes task start and end times per host to the file in MESH_TIMELINE_FILE.
  - With MESH_TIMELINE_CPU_FILE, a CPU sample (controller cgroup, lab hosts' cgroups, /proc/stat)
    at the start of every task.
requirements: [enable in ansible.cfg or with ANSIBLE_CALLBACKS_ENABLED]
"""


def cgroup2_root() -> Path | None:
    """Mount point of the cgroup v2 hierarchy (unified on hybrid hosts), from /proc/mounts."""
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


def usage_us(group: Path) -> int | None:
    """usage_usec of a cgroup v2 group's cpu.stat; None when it has none (the root)."""
    try:
        for line in (group / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value)
    except OSError:
        return None
    return None


def own_cgroup(root: Path) -> Path | None:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            relative = line[3:].strip().lstrip("/")
            return root / relative if relative else None
    return None


class CpuSampler:
    def __init__(self, path: str, hosts_dir: str | None) -> None:
        self.path = path
        root = cgroup2_root()
        self.controller = own_cgroup(root) if root is not None else None
        self.hosts_dir = Path(hosts_dir) if hosts_dir else None

    def sample(self, task: str | None) -> None:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        hosts: dict[str, int] = {}
        if self.hosts_dir is not None and self.hosts_dir.is_dir():
            for group in sorted(self.hosts_dir.iterdir()):
                used = usage_us(group) if group.is_dir() else None
                if used is not None:
                    hosts[group.name] = used
        line = {
            "task": task,
            "t": round(time.time(), 3),
            "busy": sum(fields) - fields[3] - fields[4],
            "total": sum(fields),
            "controller_us": usage_us(self.controller) if self.controller is not None else None,
            "hosts_us": hosts,
        }
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "mesh_timeline"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._path = os.environ.get("MESH_TIMELINE_FILE")
        self._started: dict[tuple[str, str], float] = {}
        cpu_file = os.environ.get("MESH_TIMELINE_CPU_FILE")
        hosts_dir = os.environ.get("MESH_TIMELINE_HOST_CGROUPS")
        self._cpu = CpuSampler(cpu_file, hosts_dir) if cpu_file else None

    def _key(self, task: Any, host: Any) -> tuple[str, str]:
        return task._uuid, host.get_name()

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        if self._cpu is not None:
            self._cpu.sample(task.get_name())

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        if self._cpu is not None:
            self._cpu.sample(task.get_name())

    def v2_playbook_on_stats(self, stats: Any) -> None:
        if self._cpu is not None:
            self._cpu.sample(None)

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        self._started[self._key(task, host)] = time.time()

    def _record(self, result: Any, status: str) -> None:
        if not self._path:
            return
        host, task = result._host, result._task
        end = time.time()
        start = self._started.pop(self._key(task, host), end)
        line = {
            "task": task.get_name(),
            "host": host.get_name(),
            "start": round(start, 3),
            "end": round(end, 3),
            "status": status,
        }
        with open(self._path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")

    def v2_runner_on_ok(self, result: Any) -> None:
        self._record(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._record(result, "unreachable")
