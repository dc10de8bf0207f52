"""Journald priorities: each line a service writes to the journal carries its level's `<N>`."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_mesh_sdk.logs import (
    JournalPriorityFormatter,
    JSONFormatter,
    stream_is_journal,
    syslog_priority,
)


def record(level: int, message: str, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            info = sys.exc_info()
    return logging.LogRecord("mcp_mesh_sdk.agent", level, __file__, 1, message, (), info)


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.CRITICAL, 2),
        (logging.ERROR, 3),
        (logging.WARNING, 4),
        (logging.INFO, 6),
        (logging.DEBUG, 7),
        (logging.ERROR + 5, 3),
        (logging.NOTSET, 7),
    ],
)
def test_each_level_has_its_syslog_priority(level: int, priority: int) -> None:
    assert syslog_priority(level) == priority


def test_a_json_line_keeps_one_prefix_and_stays_parseable_behind_it() -> None:
    line = JournalPriorityFormatter(JSONFormatter()).format(
        record(logging.ERROR, "write_file failed", exc=True)
    )
    assert line.startswith("<3>{") and "\n" not in line
    body = json.loads(line.removeprefix("<3>"))
    assert body["level"] == "ERROR" and "RuntimeError: boom" in body["exception"]


def test_every_line_of_a_text_traceback_carries_the_priority() -> None:
    text = JournalPriorityFormatter(logging.Formatter("%(levelname)s %(message)s")).format(
        record(logging.CRITICAL, "stopping", exc=True)
    )
    lines = text.split("\n")
    assert len(lines) > 3 and all(line.startswith("<2>") for line in lines)


def test_the_journal_is_recognised_by_the_device_and_inode_of_stdout(tmp_path: Path) -> None:
    with (tmp_path / "out").open("w") as stream:
        status = os.fstat(stream.fileno())
        assert stream_is_journal(stream, {"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"})
        assert not stream_is_journal(stream, {"JOURNAL_STREAM": f"{status.st_dev}:1"})
        assert not stream_is_journal(stream, {"JOURNAL_STREAM": "garbage"})
        assert not stream_is_journal(stream, {})


def serve_logs(stdout: Path, journal_stream: str | None) -> str:
    """A process that sets logging up as the services do and logs an info and an error."""
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    code = (
        "import logging, os, sys\n"
        "from mcp_mesh_sdk.logs import setup_logging\n"
        "s = os.fstat(1)\n"
        "if os.environ.get('JOURNAL_STREAM') == 'SELF':\n"
        "    os.environ['JOURNAL_STREAM'] = f'{s.st_dev}:{s.st_ino}'\n"
        "setup_logging('INFO', 'json')\n"
        "logging.getLogger('t').info('hello')\n"
        "logging.getLogger('t').error('broken')\n"
    )
    if journal_stream is not None:
        env["JOURNAL_STREAM"] = journal_stream
    with stdout.open("w") as out:
        subprocess.run([sys.executable, "-c", code], stdout=out, env=env, check=True, timeout=60)
    return stdout.read_text()


def test_a_service_on_the_journal_prefixes_and_one_on_a_terminal_does_not(
    tmp_path: Path,
) -> None:
    journal = serve_logs(tmp_path / "journal", "SELF").splitlines()
    assert [line[:3] for line in journal] == ["<6>", "<3>"]
    assert json.loads(journal[1][3:])["message"] == "broken"
    plain = serve_logs(tmp_path / "plain", None).splitlines()
    assert [json.loads(line)["level"] for line in plain] == ["INFO", "ERROR"]
