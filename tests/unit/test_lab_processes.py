"""Recorded processes are recognised by PID, start time and command line, never by name."""

import os
import subprocess
import sys

from lab.processes import (
    ProcessRecord,
    read_record,
    record,
    still_ours,
    wait_gone,
    write_record,
)


def test_record_round_trips_and_rejects_garbage(tmp_path) -> None:
    path = tmp_path / "nspawn.pid"
    written = write_record(path, os.getpid())
    assert written is not None
    assert read_record(path) == written
    path.write_text("12 not-a-number\n")
    assert read_record(path) is None
    assert read_record(tmp_path / "absent.pid") is None


def test_a_live_process_with_matching_command_line_is_ours(tmp_path) -> None:
    entry = write_record(tmp_path / "pid", os.getpid())
    assert entry is not None
    assert still_ours(entry, lambda argv: any("python" in arg or "pytest" in arg for arg in argv))
    assert not still_ours(entry, lambda argv: argv[:1] == ["systemd-nspawn"])


def test_a_recycled_pid_with_another_start_time_is_not_ours(tmp_path) -> None:
    entry = write_record(tmp_path / "pid", os.getpid())
    assert entry is not None
    assert not still_ours(ProcessRecord(entry.pid, entry.start_time + 1), lambda argv: True)


def test_an_exited_process_is_gone() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    entry = record(child.pid)
    assert entry is not None
    assert wait_gone([entry], timeout=0.1) == [entry]
    child.communicate()  # closes stdin: the child exits
    assert wait_gone([entry], timeout=5) == []
    assert not still_ours(entry, lambda argv: True)
