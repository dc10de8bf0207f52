"""Performance statistics, threshold alerts and the system health snapshot (spec shapes).

`PerformanceMonitor` keeps a window of recent samples per operation and reports count, error
rate and avg/min/max/p50/p95/p99. The spec's `error_rate` counts **server errors only** (see
`paths.Outcome`): a refused or mistaken call is the caller's problem and a security signal,
never a performance alert or an incident. Client errors are reported beside it
(`client_error_count`, `client_error_rate`). `PerformanceAlerting` compares the stats with the
spec's thresholds and raises alerts through `AlertManager`, at most once per operation and
alert name per cool-down; `performance_problems()` applies the same thresholds to a recent time
window for /health/detailed. `SystemSampler` reads psutil without blocking (the spec's 1 s CPU
sample would stall the event loop) and keeps the last snapshot for the endpoints and the
incident detector; its disk percentage is the one `df` shows (see `SystemSampler.sample`).
"""

from __future__ import annotations

import enum
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.agent.paths import Outcome

logger = logging.getLogger("mcp_mesh_sdk.agent.alerts")


OK, CLIENT_ERROR, SERVER_ERROR = Outcome.OK, Outcome.CLIENT_ERROR, Outcome.SERVER_ERROR


@dataclass
class _Operation:
    samples: deque[tuple[float, float, str]]  # (timestamp, seconds, outcome)
    durations: deque[float]  # the samples' seconds, for `window_bounds`
    total: int = 0
    server_errors: int = 0
    client_errors: int = 0
    window_server_errors: int = 0  # server errors among `samples`


@dataclass(frozen=True)
class WindowBounds:
    """What bounds an operation's window statistics, kept as calls are recorded: the count,
    the server errors and the slowest call. Average and p95 are at most `slowest_seconds`."""

    count: int
    server_errors: int
    slowest_seconds: float


class PerformanceMonitor:
    """Per-operation timing over a window of the most recent `window_size` calls."""

    def __init__(self, window_size: int = 100, clock: Callable[[], float] = time.time) -> None:
        self.window_size = window_size
        self._clock = clock
        self._operations: dict[str, _Operation] = {}

    def record(
        self, operation: str, seconds: float, success: bool = True, outcome: str | None = None
    ) -> None:
        """One call: `outcome` is ok, client_error or server_error (without it, `success`
        False means a server error)."""
        if outcome is None:
            outcome = OK if success else SERVER_ERROR
        outcome = str(outcome)
        entry = self._operations.get(operation)
        if entry is None:
            entry = _Operation(deque(maxlen=self.window_size), deque(maxlen=self.window_size))
            self._operations[operation] = entry
        samples = entry.samples
        if len(samples) == samples.maxlen and samples and samples[0][2] == SERVER_ERROR:
            entry.window_server_errors -= 1  # the oldest sample leaves the window
        samples.append((self._clock(), seconds, outcome))
        entry.durations.append(seconds)
        entry.total += 1
        if outcome == SERVER_ERROR:
            entry.server_errors += 1
            entry.window_server_errors += 1
        elif outcome == CLIENT_ERROR:
            entry.client_errors += 1

    def window_bounds(self, operation: str) -> WindowBounds | None:
        """Count, server errors and slowest call of the window (None before the first call):
        enough to tell that no threshold is crossed without computing `stats`."""
        entry = self._operations.get(operation)
        if entry is None or not entry.durations:
            return None
        return WindowBounds(len(entry.durations), entry.window_server_errors, max(entry.durations))

    def stats(self, operation: str, since: float | None = None) -> dict[str, Any]:
        """The spec's per-operation statistics over the window (only samples taken at or
        after `since` when given). `error_rate` is the server-error rate; `error_count` and
        `total_operations` count since start."""
        entry = self._operations.get(operation)
        if entry is None:
            return {}
        samples = [s for s in entry.samples if since is None or s[0] >= since]
        if not samples:
            return {}
        times = sorted(seconds for _, seconds, _ in samples)
        server = sum(1 for _, _, outcome in samples if outcome == SERVER_ERROR)
        client = sum(1 for _, _, outcome in samples if outcome == CLIENT_ERROR)
        return {
            "count": len(times),
            "total_operations": entry.total,
            "error_count": entry.server_errors,
            "window_error_count": server,
            "error_rate": server / len(times),
            "server_error_count": server,
            "server_error_rate": server / len(times),
            "client_error_count": client,
            "client_error_rate": client / len(times),
            "total_server_errors": entry.server_errors,
            "total_client_errors": entry.client_errors,
            "avg_duration_ms": sum(times) / len(times) * 1000,
            "min_duration_ms": times[0] * 1000,
            "max_duration_ms": times[-1] * 1000,
            "p50_duration_ms": percentile(times, 0.50) * 1000,
            "p95_duration_ms": percentile(times, 0.95) * 1000,
            "p99_duration_ms": percentile(times, 0.99) * 1000,
        }

    def all_stats(self, since: float | None = None) -> dict[str, dict[str, Any]]:
        found = {operation: self.stats(operation, since) for operation in sorted(self._operations)}
        return {operation: stats for operation, stats in found.items() if stats}

    def recent_samples(self, operation: str) -> list[tuple[float, float, str]]:
        entry = self._operations.get(operation)
        return list(entry.samples) if entry else []

    def operations(self) -> list[str]:
        return sorted(self._operations)

    def now(self) -> float:
        return self._clock()


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (the spec's definition)."""
    if not sorted_values:
        return 0.0
    index = max(0, math.ceil(len(sorted_values) * fraction) - 1)
    return sorted_values[min(index, len(sorted_values) - 1)]


class AlertSeverity(enum.Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Alert:
    name: str
    severity: AlertSeverity
    message: str
    timestamp: float
    metadata: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["severity"] = self.severity.value
        return shown


def log_alert(alert: Alert) -> None:
    level = {
        AlertSeverity.CRITICAL: logging.CRITICAL,
        AlertSeverity.WARNING: logging.WARNING,
        AlertSeverity.INFO: logging.INFO,
    }[alert.severity]
    logger.log(
        level,
        "%s ALERT: %s",
        alert.severity.value.upper(),
        alert.message,
        extra={"fields": {"alert": alert.name, **alert.metadata}},
    )


class AlertManager:
    """Keeps the last alerts and hands each new one to every handler."""

    def __init__(self, max_history: int = 1000) -> None:
        self.handlers: list[Callable[[Alert], None]] = [log_alert]
        self.history: deque[Alert] = deque(maxlen=max_history)

    def trigger(self, alert: Alert) -> None:
        self.history.append(alert)
        for handler in self.handlers:
            try:
                handler(alert)
            except Exception:
                logger.exception("alert handler %r failed", handler)


THRESHOLDS = {
    "avg_response_time_ms": 1000.0,
    "error_rate": 0.05,  # server errors only
    "p95_response_time_ms": 2000.0,
}

# (alert name, severity, stats key, threshold key, what it is called, how a value is shown)
_CHECKS = (
    ("high_avg_response_time", AlertSeverity.WARNING, "avg_duration_ms",
     "avg_response_time_ms", "average response time", "{:.1f} ms"),
    ("high_error_rate", AlertSeverity.CRITICAL, "error_rate", "error_rate",
     "error rate", "{:.1%}"),
    ("high_p95_response_time", AlertSeverity.WARNING, "p95_duration_ms",
     "p95_response_time_ms", "p95 response time", "{:.1f} ms"),
)  # fmt: skip


@dataclass(frozen=True)
class Breach:
    """One threshold crossed by one operation's stats."""

    name: str
    severity: AlertSeverity
    operation: str
    value: float
    threshold: float
    message: str


def threshold_breaches(
    operation: str, stats: dict[str, Any], thresholds: dict[str, float] | None = None
) -> list[Breach]:
    """The spec's PerformanceAlerting checks: each threshold `stats` is over (not at)."""
    limits = THRESHOLDS if thresholds is None else thresholds
    found = []
    for name, severity, stat_key, threshold_key, label, shown in _CHECKS:
        value = float(stats.get(stat_key, 0.0))
        threshold = limits[threshold_key]
        if value > threshold:
            message = (
                f"High {label} for {operation}: {shown.format(value)} "
                f"(threshold {shown.format(threshold)})"
            )
            found.append(Breach(name, severity, operation, value, threshold, message))
    return found


class PerformanceAlerting:
    """The spec's thresholds; one alert per (operation, alert) per `cooldown_seconds`."""

    def __init__(
        self,
        manager: AlertManager,
        *,
        cooldown_seconds: float = 300.0,
        min_samples: int = 5,
        thresholds: dict[str, float] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.manager = manager
        self.cooldown_seconds = cooldown_seconds
        self.min_samples = min_samples
        self.thresholds = dict(THRESHOLDS if thresholds is None else thresholds)
        self._clock = clock
        self._last_raised: dict[tuple[str, str], float] = {}

    def check(self, operation: str, stats: dict[str, Any]) -> list[Alert]:
        """Raise what `stats` of one operation call for; returns the alerts raised now.

        The error rate is `stats["error_rate"]`, which PerformanceMonitor computes from server
        errors only: client errors never raise an alert."""
        if stats.get("count", 0) < self.min_samples:
            return []
        raised = []
        for breach in threshold_breaches(operation, stats, self.thresholds):
            if not self._due(operation, breach.name):
                continue
            alert = Alert(
                name=breach.name,
                severity=breach.severity,
                message=breach.message,
                timestamp=self._clock(),
                metadata={"operation": operation, "value": breach.value,
                          "threshold": breach.threshold},
            )  # fmt: skip
            self.manager.trigger(alert)
            raised.append(alert)
        return raised

    def check_monitor(self, operation: str, monitor: PerformanceMonitor) -> list[Alert]:
        """`check(operation, monitor.stats(operation))`, without computing the statistics when
        the window's bounds show no threshold can be crossed: the average and the p95 are at
        most the slowest call, and the error rate is known."""
        bounds = monitor.window_bounds(operation)
        if bounds is None or bounds.count < self.min_samples:
            return []
        limits = self.thresholds
        latency_limit = min(limits["avg_response_time_ms"], limits["p95_response_time_ms"])
        # A margin below the limits: the average's rounding may put it a hair above the slowest.
        if bounds.server_errors / bounds.count <= limits[
            "error_rate"
        ] and bounds.slowest_seconds * 1000 < latency_limit * (1 - 1e-9):
            return []
        return self.check(operation, monitor.stats(operation))

    def _due(self, operation: str, name: str) -> bool:
        now = self._clock()
        last = self._last_raised.get((operation, name))
        if last is not None and now - last < self.cooldown_seconds:
            return False
        self._last_raised[(operation, name)] = now
        return True


HEALTH_WINDOW_SECONDS = 60.0
HEALTH_MIN_SAMPLES = 10


@dataclass(frozen=True)
class PerformanceHealth:
    """The alert thresholds applied to the recent window (see `performance_problems`)."""

    reasons: list[str]
    operations: dict[str, dict[str, Any]]
    window_seconds: float
    min_samples: int

    def describe(self) -> dict[str, Any]:
        return {
            "status": "degraded" if self.reasons else "ok",
            "window_seconds": self.window_seconds,
            "min_samples": self.min_samples,
            "thresholds": dict(THRESHOLDS),
            "operations": self.operations,
            "reasons": list(self.reasons),
        }


def performance_problems(
    monitor: PerformanceMonitor,
    *,
    window_seconds: float = HEALTH_WINDOW_SECONDS,
    min_samples: int = HEALTH_MIN_SAMPLES,
    thresholds: dict[str, float] | None = None,
) -> PerformanceHealth:
    """Which of the spec's PerformanceAlerting thresholds (server-error rate > 5 %, average
    latency > 1000 ms, p95 > 2000 ms) an operation crosses over the last `window_seconds`.

    Only calls made in the window count (and at most the monitor's last `window_size` calls of
    each operation), and an operation with fewer than `min_samples` calls in the window is not
    judged: an old burst stops counting once it is `window_seconds` old, and one slow or failed
    call among a handful does not make the agent degraded.
    """
    since = monitor.now() - window_seconds
    reasons: list[str] = []
    shown: dict[str, dict[str, Any]] = {}
    for operation, stats in monitor.all_stats(since=since).items():
        judged = stats["count"] >= min_samples
        shown[operation] = {
            "count": stats["count"],
            "judged": judged,
            "server_error_rate": round(stats["server_error_rate"], 4),
            "client_error_rate": round(stats["client_error_rate"], 4),
            "avg_duration_ms": round(stats["avg_duration_ms"], 3),
            "p95_duration_ms": round(stats["p95_duration_ms"], 3),
        }
        if judged:
            breaches = threshold_breaches(operation, stats, thresholds)
            reasons += [f"{b.message} over the last {window_seconds:g} s" for b in breaches]
    return PerformanceHealth(reasons, shown, window_seconds, min_samples)


@dataclass(frozen=True)
class SystemHealth:
    """The spec's system health figures (percentages 0-100)."""

    cpu_percent: float
    memory_percent: float
    disk_usage_percent: float
    load_average: list[float]
    available_memory_mb: float
    free_disk_space_gb: float
    process_rss_mb: float
    disk_path: str
    sampled_at: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


SYSTEM_LIMITS = {"cpu_percent": 80.0, "memory_percent": 90.0, "disk_usage_percent": 85.0}


class SystemSampler:
    """Reads CPU, memory, disk and load without blocking; keeps the last reading."""

    def __init__(self, disk_path: Path | None = None) -> None:
        import psutil

        self._psutil = psutil
        self._process = psutil.Process()
        self.disk_path = disk_path if disk_path is not None else Path("/")
        psutil.cpu_percent(interval=None)  # primes the counter: the next call has a baseline
        self.last: SystemHealth | None = None

    def sample(self) -> SystemHealth:
        psutil = self._psutil
        memory = psutil.virtual_memory()
        disk_path = self.disk_path if self.disk_path.exists() else Path("/")
        disk = psutil.disk_usage(str(disk_path))
        self.last = SystemHealth(
            cpu_percent=psutil.cpu_percent(interval=None),
            memory_percent=memory.percent,
            # used / (used + available to unprivileged users), as `df` computes it: the blocks
            # ext4 reserves for root are not free for the agent (used / total would hide them).
            disk_usage_percent=float(disk.percent),
            load_average=[round(value, 2) for value in os.getloadavg()],
            available_memory_mb=memory.available / 1024 / 1024,
            free_disk_space_gb=disk.free / 1024**3,
            process_rss_mb=self._process.memory_info().rss / 1024 / 1024,
            disk_path=str(disk_path),
            sampled_at=time.time(),
        )
        return self.last

    def snapshot(self) -> SystemHealth:
        return self.last if self.last is not None else self.sample()


def system_issues(health: SystemHealth) -> list[str]:
    """The spec's diagnostics: CPU over 80 %, memory over 90 %, disk over 85 %."""
    issues = []
    if health.cpu_percent > SYSTEM_LIMITS["cpu_percent"]:
        issues.append(f"High CPU usage: {health.cpu_percent:.1f}%")
    if health.memory_percent > SYSTEM_LIMITS["memory_percent"]:
        issues.append(f"High memory usage: {health.memory_percent:.1f}%")
    if health.disk_usage_percent > SYSTEM_LIMITS["disk_usage_percent"]:
        issues.append(f"High disk usage: {health.disk_usage_percent:.1f}% ({health.disk_path})")
    return issues
