"""Performance statistics, threshold alerts and the system health snapshot (spec shapes).

`PerformanceMonitor` keeps a window of recent samples per operation and reports count, error
rate and avg/min/max/p50/p95/p99. `PerformanceAlerting` compares those with the spec's
thresholds and raises alerts through `AlertManager`, at most once per operation and alert name
per cool-down. `SystemSampler` reads psutil without blocking (the spec's 1 s CPU sample would
stall the event loop) and keeps the last snapshot for the endpoints and the incident detector.
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

logger = logging.getLogger("mcp_mesh_sdk.agent.alerts")


@dataclass
class _Operation:
    samples: deque[tuple[float, float, bool]]  # (timestamp, seconds, succeeded)
    total: int = 0
    errors: int = 0


class PerformanceMonitor:
    """Per-operation timing over a window of the most recent `window_size` calls."""

    def __init__(self, window_size: int = 100, clock: Callable[[], float] = time.time) -> None:
        self.window_size = window_size
        self._clock = clock
        self._operations: dict[str, _Operation] = {}

    def record(self, operation: str, seconds: float, success: bool = True) -> None:
        entry = self._operations.get(operation)
        if entry is None:
            entry = _Operation(deque(maxlen=self.window_size))
            self._operations[operation] = entry
        entry.samples.append((self._clock(), seconds, success))
        entry.total += 1
        if not success:
            entry.errors += 1

    def stats(self, operation: str) -> dict[str, Any]:
        """The spec's per-operation statistics; the error rate is over the window."""
        entry = self._operations.get(operation)
        if entry is None or not entry.samples:
            return {}
        times = sorted(seconds for _, seconds, _ in entry.samples)
        window_errors = sum(1 for _, _, ok in entry.samples if not ok)
        return {
            "count": len(times),
            "total_operations": entry.total,
            "error_count": entry.errors,
            "window_error_count": window_errors,
            "error_rate": window_errors / len(times),
            "avg_duration_ms": sum(times) / len(times) * 1000,
            "min_duration_ms": times[0] * 1000,
            "max_duration_ms": times[-1] * 1000,
            "p50_duration_ms": percentile(times, 0.50) * 1000,
            "p95_duration_ms": percentile(times, 0.95) * 1000,
            "p99_duration_ms": percentile(times, 0.99) * 1000,
        }

    def all_stats(self) -> dict[str, dict[str, Any]]:
        return {operation: self.stats(operation) for operation in sorted(self._operations)}

    def recent_samples(self, operation: str) -> list[tuple[float, float, bool]]:
        entry = self._operations.get(operation)
        return list(entry.samples) if entry else []

    def operations(self) -> list[str]:
        return sorted(self._operations)


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
    "error_rate": 0.05,
    "p95_response_time_ms": 2000.0,
}


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
        """Raise what `stats` of one operation call for; returns the alerts raised now."""
        if stats.get("count", 0) < self.min_samples:
            return []
        raised = []
        checks = (
            ("high_avg_response_time", AlertSeverity.WARNING, "avg_duration_ms",
             "avg_response_time_ms", "average response time", "{:.1f} ms"),
            ("high_error_rate", AlertSeverity.CRITICAL, "error_rate", "error_rate",
             "error rate", "{:.1%}"),
            ("high_p95_response_time", AlertSeverity.WARNING, "p95_duration_ms",
             "p95_response_time_ms", "p95 response time", "{:.1f} ms"),
        )  # fmt: skip
        for name, severity, stat_key, threshold_key, label, shown in checks:
            value = float(stats.get(stat_key, 0.0))
            threshold = self.thresholds[threshold_key]
            if value <= threshold or not self._due(operation, name):
                continue
            alert = Alert(
                name=name,
                severity=severity,
                message=f"High {label} for {operation}: {shown.format(value)} "
                f"(threshold {shown.format(threshold)})",
                timestamp=self._clock(),
                metadata={"operation": operation, "value": value, "threshold": threshold},
            )
            self.manager.trigger(alert)
            raised.append(alert)
        return raised

    def _due(self, operation: str, name: str) -> bool:
        now = self._clock()
        last = self._last_raised.get((operation, name))
        if last is not None and now - last < self.cooldown_seconds:
            return False
        self._last_raised[(operation, name)] = now
        return True


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
            disk_usage_percent=disk.used / disk.total * 100 if disk.total else 0.0,
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
