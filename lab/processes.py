"""Processes the lab started, identified by PID *and* start time, never by name.

A PID file holds `PID STARTTIME` (the clock-tick start time from /proc/PID/stat), so a
recycled PID is never mistaken for the lab's process; the command line is checked as well
before any signal is sent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessRecord:
    pid: int
    start_time: int

    def render(self) -> str:
        return f"{self.pid} {self.start_time}\n"

    @classmethod
    def parse(cls, text: str) -> ProcessRecord | None:
        words = text.split()
        if len(words) != 2 or not all(word.isdigit() for word in words):
            return None
        return cls(int(words[0]), int(words[1]))


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may hold spaces)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22 of stat, counted after the name


def parent_pid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def is_alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in {"Z", "X"}


def cmdline(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def record(pid: int) -> ProcessRecord | None:
    started = start_time(pid)
    return None if started is None else ProcessRecord(pid, started)


def write_record(path: Path, pid: int) -> ProcessRecord | None:
    found = record(pid)
    if found is not None:
        path.write_text(found.render())
    return found


def read_record(path: Path) -> ProcessRecord | None:
    try:
        return ProcessRecord.parse(path.read_text())
    except OSError:
        return None


def still_ours(entry: ProcessRecord, matches: Callable[[list[str]], bool]) -> bool:
    """The recorded process is alive, has not been replaced, and its command line fits."""
    return (
        is_alive(entry.pid)
        and start_time(entry.pid) == entry.start_time
        and matches(cmdline(entry.pid))
    )


def children(pid: int) -> list[int]:
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and parent_pid(int(entry.name)) == pid:
            found.append(int(entry.name))
    return found


def send(entry: ProcessRecord, sig: signal.Signals | int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(entry.pid, sig)


def wait_gone(entries: Iterable[ProcessRecord], timeout: float) -> list[ProcessRecord]:
    """Wait until every process has exited; those still running at the deadline."""
    pending = list(entries)
    deadline = time.monotonic() + timeout
    while pending:
        pending = [e for e in pending if is_alive(e.pid) and start_time(e.pid) == e.start_time]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return pending


def in_network_namespace(netns_file: Path) -> list[int]:
    """PIDs of the processes whose network namespace is the one bound at `netns_file`."""
    try:
        wanted = netns_file.stat()
    except OSError:
        return []
    users = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            found = (entry / "ns" / "net").stat()
        except OSError:
            continue
        if (found.st_dev, found.st_ino) == (wanted.st_dev, wanted.st_ino) and is_alive(
            int(entry.name)
        ):
            users.append(int(entry.name))
    return users
