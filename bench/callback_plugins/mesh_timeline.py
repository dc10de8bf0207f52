"""Ansible callback: one JSON line per task and host, with wall-clock start and end.

Enable with `ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins` and
`ANSIBLE_CALLBACKS_ENABLED=mesh_timeline`; lines go to the file named by
`MESH_TIMELINE_FILE` (nothing is written when it is unset). Times are `time.time()`, so a
benchmark can line them up with its own samples. Fields: task, host, start, end, status
(ok, changed, failed, skipped, unreachable).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: mesh_timeline
type: aggregate
short_description: per-task, per-host wall-clock times as JSON lines
description: Writes task start and end times per host to the file in MESH_TIMELINE_FILE.
requirements: [enable in ansible.cfg or with ANSIBLE_CALLBACKS_ENABLED]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "mesh_timeline"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._path = os.environ.get("MESH_TIMELINE_FILE")
        self._started: dict[tuple[str, str], float] = {}

    def _key(self, task: Any, host: Any) -> tuple[str, str]:
        return task._uuid, host.get_name()

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
