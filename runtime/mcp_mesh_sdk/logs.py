"""Logging set-up shared by the agent and the registry: JSON lines on stdout for journald.

When stdout is the journal (systemd sets `JOURNAL_STREAM` to its device and inode), each line
starts with its syslog priority, `<3>` for ERROR and so on (sd-daemon(3)): journald strips the
prefix and files the line under that priority, so `journalctl -p err` shows the errors and the
message stays one JSON object. On a terminal or in a container the lines carry no prefix."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

# Set per request by the HTTP middleware; every record logged meanwhile carries them.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)
operation_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "operation", default=None
)
# The client a request authenticated as (agent.clients), set by the agent's bearer gate.
client_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("client", default=None)

_CONTEXT_FIELDS = {
    "request_id": request_id_var,
    "correlation_id": correlation_id_var,
    "operation": operation_var,
    "client": client_var,
}


class JSONFormatter(logging.Formatter):
    """The spec's JSON log line: timestamp, level, logger, message, module, function, line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "module": record.module,
            "function": record.funcName,
            "line": record.lineno,
        }
        for name, var in _CONTEXT_FIELDS.items():
            value = getattr(record, name, None) or var.get()
            if value:
                entry[name] = value
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _ENCODER.encode(entry)


_ENCODER = json.JSONEncoder(default=str)  # json.dumps(..., default=str) makes one per call


TEXT_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level: 2 crit, 3 err, 4 warning, 6 info, 7 debug."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    return 6 if levelno >= logging.INFO else 7


class JournalPriorityFormatter(logging.Formatter):
    """Another formatter's lines, each prefixed with the record's `<priority>` for journald
    (every line: a text-format traceback spans several, and journald reads each alone)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in self.inner.format(record).split("\n"))


def stream_is_journal(stream: Any, environ: dict[str, str] | None = None) -> bool:
    """Whether `stream` is the journal's stdout stream (`JOURNAL_STREAM` is "device:inode")."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    try:
        status = os.fstat(stream.fileno())
        return (status.st_dev, status.st_ino) == (int(device), int(inode))
    except (ValueError, OSError, AttributeError):
        return False


def setup_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Route every logger (uvicorn's too) to one stdout handler in the chosen format, with
    journald priorities when stdout is the journal."""
    handler = logging.StreamHandler(sys.stdout)
    formatter = JSONFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)
    if stream_is_journal(sys.stdout):
        formatter = JournalPriorityFormatter(formatter)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uv_logger = logging.getLogger(name)
        uv_logger.handlers.clear()
        uv_logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


AUDIT_LOGGER = "mcp_mesh_sdk.agent.audit"
# The audit file's bound: it rotates at AUDIT_LOG_MAX_BYTES and keeps AUDIT_LOG_BACKUPS old files.
AUDIT_LOG_MAX_BYTES = 16 * 1024 * 1024
AUDIT_LOG_BACKUPS = 4


class AuditFileHandler(RotatingFileHandler):
    """`RotatingFileHandler` (rotates at `maxBytes`, keeps `backupCount` old files) that formats
    each record once: the standard one formats it twice (once to size it) and looks the path
    up twice per record (bpo-45401: only a regular file is rotated), a third of a tool call's
    time at one connection. Here the path is looked at when the file is opened, and the size
    is still taken from the open file before each line, as the standard handler does."""

    def _open(self) -> Any:
        # bpo-45401: never rotate anything but a regular file (/dev/null, a FIFO...).
        path = Path(self.baseFilename)
        self._rotatable = not (path.exists() and not path.is_file())
        return super()._open()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            if self.stream is None:
                self.stream = self._open()
            if self.maxBytes > 0 and self._rotatable:
                self.stream.seek(0, 2)
                if self.stream.tell() + len(line) >= self.maxBytes:
                    self.doRollover()
                    if self.stream is None:
                        self.stream = self._open()
            self.stream.write(line)
            self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def setup_audit_log(path: Path | None) -> None:
    """Send the audit records (one per tool call) to `path` as JSON lines, rotated and bounded,
    instead of the service log: at full load they would crowd the service's own lines out of
    the journal (and hit journald's rate limit). Without a path they stay in the service log."""
    audit = logging.getLogger(AUDIT_LOGGER)
    for old in audit.handlers[:]:
        audit.removeHandler(old)
        old.close()
    if path is None:
        audit.propagate = True
        return
    handler = AuditFileHandler(
        path, maxBytes=AUDIT_LOG_MAX_BYTES, backupCount=AUDIT_LOG_BACKUPS, encoding="utf-8"
    )
    handler.setFormatter(JSONFormatter())
    audit.addHandler(handler)
    audit.setLevel(logging.INFO)
    audit.propagate = False
