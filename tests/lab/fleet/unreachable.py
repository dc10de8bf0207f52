"""Make one lab host unreachable while a playbook runs, and reachable again.

`cut_off(lab, host)` sets the bridge end of the host's veth down: nothing reaches the host or
leaves it (controller, load balancer, registry, other agents), as when a host's network fails,
while the host itself keeps running with its addresses and routes untouched. `reconnect` sets
the link up again. `CutOffWhen` does the cut from a background thread as soon as a condition
holds, e.g. once the agent before it serves the new version. `run_playbook_within` runs a
playbook with a deadline and kills its whole process group (workers, ssh) when it runs over.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lab.network import ip
from lab.state import LabPaths, load_topology
from tests.lab.conftest import REPO, VENV_BIN


def bridge_end_of(lab_name: str, host: str) -> str:
    topology = load_topology(LabPaths(lab_name))
    if topology is None:
        raise RuntimeError(f"lab '{lab_name}' is not up")
    return topology.veth(topology.host(host))


def cut_off(lab_name: str, host: str) -> None:
    ip("link", "set", bridge_end_of(lab_name, host), "down")


def reconnect(lab_name: str, host: str) -> None:
    ip("link", "set", bridge_end_of(lab_name, host), "up")


@dataclass
class CutOffWhen:
    """Cuts `host` off once `ready()` returns True (polled); gives up after `max_seconds`."""

    lab_name: str
    host: str
    ready: Callable[[], bool]
    max_seconds: float = 300.0
    poll_seconds: float = 0.2
    cut_at: float | None = None  # time.monotonic() of the cut
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> CutOffWhen:
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _watch(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            if self._holds():
                cut_off(self.lab_name, self.host)
                self.cut_at = time.monotonic()
                return
            self._stop.wait(self.poll_seconds)

    def _holds(self) -> bool:
        try:
            return self.ready()
        except OSError:  # e.g. the agent restarting: not yet
            return False


def run_playbook_within(
    lab: Any, seconds: float, *args: str
) -> subprocess.CompletedProcess[str] | None:
    """`ansible-playbook -i INVENTORY ARGS` as lab.ansible_playbook runs it; None when it ran over.

    The playbook runs in a session of its own: on timeout its forks and ssh clients, blocked on
    the unreachable host, are killed with it.
    """
    command = [str(VENV_BIN / "ansible-playbook"), "-i", str(lab.inventory), *args]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
