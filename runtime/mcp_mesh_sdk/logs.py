"""Logging set-up shared by the agent and the registry: JSON lines on stdout for journald."""

from __future__ import annotations

import contextvars
import json
import logging
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
        return json.dumps(entry, default=str)


TEXT_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"


def setup_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Route every logger (uvicorn's too) to one stdout handler in the chosen format."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JSONFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
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
    handler = RotatingFileHandler(
        path, maxBytes=AUDIT_LOG_MAX_BYTES, backupCount=AUDIT_LOG_BACKUPS, encoding="utf-8"
    )
    handler.setFormatter(JSONFormatter())
    audit.addHandler(handler)
    audit.setLevel(logging.INFO)
    audit.propagate = False
