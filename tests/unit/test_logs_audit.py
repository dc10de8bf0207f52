"""The audit file: one JSON line per record, rotated at its bound like RotatingFileHandler."""

from __future__ import annotations

import json
import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

from mcp_mesh_sdk.logs import AuditFileHandler, JSONFormatter


def record(number: int) -> logging.LogRecord:
    return logging.LogRecord(
        "mcp_mesh_sdk.agent.audit", logging.INFO, __file__, 1, "read_file ok by %s", (number,), None
    )


def files(folder: Path) -> dict[str, list[str]]:
    return {path.name: path.read_text().splitlines() for path in sorted(folder.iterdir())}


def write(handler: logging.Handler, count: int) -> None:
    handler.setFormatter(JSONFormatter())
    for number in range(count):
        handler.handle(record(number))
    handler.close()


def test_audit_files_rotate_as_the_standard_handler_does(tmp_path: Path) -> None:
    ours, standard = tmp_path / "ours", tmp_path / "standard"
    ours.mkdir()
    standard.mkdir()
    write(AuditFileHandler(ours / "audit.log", maxBytes=2000, backupCount=2), 60)
    write(RotatingFileHandler(standard / "audit.log", maxBytes=2000, backupCount=2), 60)
    written, expected = files(ours), files(standard)
    assert sorted(written) == ["audit.log", "audit.log.1", "audit.log.2"]

    def messages(found: dict[str, list[str]]) -> dict[str, list[str]]:
        return {
            name: [json.loads(line)["message"] for line in lines] for name, lines in found.items()
        }

    assert messages(written) == messages(expected)
    assert all(path.stat().st_size < 2000 for path in ours.iterdir())


def test_a_file_that_is_not_regular_is_never_rotated() -> None:
    handler = AuditFileHandler("/dev/null", maxBytes=10, backupCount=2)
    failures: list[logging.LogRecord] = []
    handler.handleError = failures.append  # type: ignore[method-assign]
    write(handler, 5)  # a rotation would try to rename /dev/null
    assert failures == []
    assert Path("/dev/null").is_char_device() and not Path("/dev/null.1").exists()
