"""Incidents: detected from operation and system metrics, kept in `<state_dir>/incidents.jsonl`.

One JSON object a line: id, severity, title, description, components, actions, status
(`open` | `resolved`), created_at, resolved_at, resolution, cause. `cause` is a stable key
(`error_rate:<operation>`, `response_time:<operation>`, `memory`, `disk`): while an incident
for a cause is open, the same cause opens no other.

The error rate is the **server-error** rate (the agent failed a valid call: an I/O error, a
timeout, a crash). Client errors (refusals, missing files, bad arguments) are the caller's
problem and a security signal, counted by the SecurityMonitor: they never open an incident,
however many there are. The disk percentage is the one `df` shows (see
`agent.monitoring.SystemSampler`).

Every update rewrites the file under an exclusive `flock` on `incidents.jsonl.lock` (so two
writers, e.g. the agent's loop and `mcp-mesh-sdk incidents resolve`, never lose each other's
change) through a temporary file that is fsynced and renamed into place (so a reader or a
crash never sees half a file). Lines that do not parse are kept verbatim, never dropped.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.atomicfile import atomic_write_text, open_lock_file
from mcp_mesh_sdk.constants import STATE_DIR
from mcp_mesh_sdk.errors import OpsError

log = logging.getLogger("mcp_mesh_sdk.incidents")

INCIDENTS_FILE = "incidents.jsonl"
OPEN = "open"
RESOLVED = "resolved"


class Severity(StrEnum):
    P1 = "P1_Critical"  # system down, data loss
    P2 = "P2_High"  # major functionality impacted
    P3 = "P3_Medium"  # minor functionality impacted
    P4 = "P4_Low"  # cosmetic


# The spec's IncidentDetector thresholds.
ERROR_RATE_THRESHOLD = 0.10  # fraction of calls that ended in a server error
RESPONSE_TIME_THRESHOLD_MS = 5000.0
MEMORY_THRESHOLD_PERCENT = 90.0
DISK_THRESHOLD_PERCENT = 95.0


class UnknownIncident(OpsError):
    exit_code = 1


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_incident_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"INC-{stamp}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class Incident:
    id: str
    severity: str
    title: str
    description: str
    cause: str
    components: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    status: str = OPEN
    created_at: str = field(default_factory=_now)
    resolved_at: str | None = None
    resolution: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Incident:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        incident = cls(**known)
        if not isinstance(incident.id, str) or incident.status not in (OPEN, RESOLVED):
            raise ValueError("not an incident record")
        return incident

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


Record = Incident | str  # a parsed incident, or a line that did not parse (kept as is)


class IncidentStore:
    """The incidents of one host, in `<state_dir>/incidents.jsonl`."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / INCIDENTS_FILE
        self.lock_path = self.state_dir / (INCIDENTS_FILE + ".lock")

    def all(self) -> list[Incident]:
        """Every incident, oldest first (the file's order)."""
        return [record for record in self._read() if isinstance(record, Incident)]

    def open_incidents(self) -> list[Incident]:
        return [incident for incident in self.all() if incident.status == OPEN]

    def unreadable_lines(self) -> int:
        return sum(1 for record in self._read() if isinstance(record, str))

    def open_new(self, candidates: list[Incident]) -> list[Incident]:
        """Append those candidates whose cause has no open incident; return the ones added."""
        added: list[Incident] = []

        def change(records: list[Record]) -> list[Record]:
            busy = {r.cause for r in records if isinstance(r, Incident) and r.status == OPEN}
            for candidate in candidates:
                if candidate.cause not in busy:
                    busy.add(candidate.cause)
                    added.append(candidate)
            return records + list(added)

        if candidates:
            self._update(change)
        return added

    def resolve(self, incident_id: str, note: str) -> Incident:
        """Mark one incident resolved with `note`; UnknownIncident for an id not in the file."""
        resolved: list[Incident] = []

        def change(records: list[Record]) -> list[Record]:
            updated: list[Record] = []
            for record in records:
                if isinstance(record, Incident) and record.id == incident_id:
                    if record.status == RESOLVED:
                        raise OpsError(f"incident {incident_id} is already resolved")
                    record = replace(
                        record,
                        status=RESOLVED,
                        resolved_at=_now(),
                        resolution=note,
                        actions=[*record.actions, f"resolved: {note}"],
                    )
                    resolved.append(record)
                updated.append(record)
            if not resolved:
                raise UnknownIncident(f"no incident with id {incident_id!r} in {self.path}")
            return updated

        self._update(change)
        return resolved[0]

    # -- file handling ------------------------------------------------------------------------
    def _read(self) -> list[Record]:
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise OpsError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        records: list[Record] = []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                records.append(Incident.from_json(json.loads(line)))
            except (ValueError, TypeError):
                records.append(line)
        return records

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            handle = open_lock_file(self.lock_path)
        except OSError as exc:
            raise OpsError(f"cannot lock {self.lock_path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)  # closing releases the lock

    def _update(self, change: Callable[[list[Record]], list[Record]]) -> None:
        with self._locked():
            records = change(self._read())
            lines = [r if isinstance(r, str) else json.dumps(r.to_json()) for r in records]
            atomic_write_text(self.path, "".join(line + "\n" for line in lines))


_RUNBOOK = {
    "error_rate": ["check the agent's logs for the failing operation", "check BASE_DIRECTORY"],
    "response_time": ["check load (mcp-mesh-sdk diagnose)", "check disk latency on the host"],
    "memory": ["free -h; ps aux --sort=-%mem | head", "restart the agent if it is the consumer"],
    "disk": [f"df -h; du -sh {STATE_DIR}/*", "prune backups: mcp-mesh-sdk backup prune"],
}


def server_error_rate(stats: Mapping[str, float]) -> float:
    """The share of calls the agent failed: `server_error_rate` when the stats carry it, else
    the spec's `error_rate` (which the agent's PerformanceMonitor computes from server errors
    only). Client errors are never part of it."""
    if "server_error_rate" in stats:
        return float(stats["server_error_rate"])
    return float(stats.get("error_rate", 0.0))


class IncidentDetector:
    """The spec's detector: opens incidents when metrics cross its thresholds."""

    def __init__(self, store: IncidentStore) -> None:
        self.store = store

    def candidates(
        self, operations: Mapping[str, Mapping[str, float]], system: Mapping[str, float]
    ) -> list[Incident]:
        """The incidents these metrics call for, before de-duplication against open ones."""
        found: list[Incident] = []

        def add(kind: str, severity: Severity, title: str, text: str, component: str) -> None:
            cause = kind if component == "system" else f"{kind}:{component}"
            found.append(
                Incident(
                    id=new_incident_id(),
                    severity=severity.value,
                    title=title,
                    description=text,
                    cause=cause,
                    components=[component],
                    actions=list(_RUNBOOK[kind]),
                )
            )

        for operation, stats in sorted(operations.items()):
            error_rate = server_error_rate(stats)
            if error_rate > ERROR_RATE_THRESHOLD:
                text = f"Error rate for {operation} is {error_rate:.1%} (server errors)"
                add("error_rate", Severity.P2, f"High Error Rate: {operation}", text, operation)
            average = float(stats.get("avg_duration_ms", 0.0))
            if average > RESPONSE_TIME_THRESHOLD_MS:
                text = f"Average response time for {operation} is {average:.1f}ms"
                add(
                    "response_time",
                    Severity.P3,
                    f"Slow Response Time: {operation}",
                    text,
                    operation,
                )
        memory = float(system.get("memory_percent", 0.0))
        if memory > MEMORY_THRESHOLD_PERCENT:
            add(
                "memory",
                Severity.P2,
                "High Memory Usage",
                f"Memory usage is {memory:.1f}%",
                "system",
            )
        disk = float(system.get("disk_usage_percent", 0.0))
        if disk > DISK_THRESHOLD_PERCENT:
            add("disk", Severity.P1, "High Disk Usage", f"Disk usage is {disk:.1f}%", "system")
        return found

    def check(
        self, operations: Mapping[str, Mapping[str, float]], system: Mapping[str, float]
    ) -> list[Incident]:
        """Open an incident for each crossed threshold without an open one; return those opened."""
        return self.open(self.candidates(operations, system))

    def open(self, candidates: list[Incident]) -> list[Incident]:
        """Open those `candidates` whose cause has none open (logged); return those opened."""
        opened = self.store.open_new(candidates)
        for incident in opened:
            level = logging.CRITICAL if incident.severity == Severity.P1 else logging.WARNING
            log.log(
                level,
                f"incident opened: {incident.title}",
                extra={"fields": {"incident": incident.id, "severity": incident.severity}},
            )
        return opened
