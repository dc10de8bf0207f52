"""Performance statistics, threshold alerts (and their rate limit), the system snapshot."""

from __future__ import annotations

import logging
import subprocess
from collections import namedtuple
from pathlib import Path

import pytest

from mcp_mesh_sdk.agent.monitoring import (
    AlertManager,
    AlertSeverity,
    PerformanceAlerting,
    PerformanceMonitor,
    SystemHealth,
    SystemSampler,
    percentile,
    performance_problems,
    system_issues,
)


class Clock:
    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now


def test_stats_have_the_spec_fields_in_milliseconds() -> None:
    monitor = PerformanceMonitor()
    for seconds in (0.010, 0.020, 0.030, 0.040):
        monitor.record("read_file", seconds)
    monitor.record("read_file", 0.100, success=False)
    stats = monitor.stats("read_file")
    assert stats["count"] == 5 and stats["total_operations"] == 5
    assert stats["error_count"] == 1
    assert stats["error_rate"] == pytest.approx(0.2)
    assert stats["avg_duration_ms"] == pytest.approx(40.0)
    assert stats["min_duration_ms"] == pytest.approx(10.0)
    assert stats["max_duration_ms"] == pytest.approx(100.0)
    assert stats["p50_duration_ms"] == pytest.approx(30.0)
    assert stats["p95_duration_ms"] == pytest.approx(100.0)
    assert monitor.all_stats() == {"read_file": stats}
    assert monitor.stats("never") == {}


def test_window_keeps_only_recent_samples_but_totals_keep_counting() -> None:
    monitor = PerformanceMonitor(window_size=3)
    monitor.record("op", 1.0, success=False)
    for _ in range(3):
        monitor.record("op", 0.001)
    stats = monitor.stats("op")
    assert stats["count"] == 3 and stats["total_operations"] == 4
    assert stats["error_rate"] == 0.0  # the failure left the window
    assert stats["error_count"] == 1
    assert stats["max_duration_ms"] == pytest.approx(1.0)


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.95) == 0.0


def alerting(clock: Clock) -> tuple[PerformanceAlerting, AlertManager]:
    manager = AlertManager()
    return PerformanceAlerting(manager, clock=clock, min_samples=5), manager


def stats(avg: float = 10.0, error_rate: float = 0.0, p95: float = 10.0) -> dict[str, float]:
    return {"count": 20, "avg_duration_ms": avg, "error_rate": error_rate, "p95_duration_ms": p95}


@pytest.mark.parametrize(
    ("figures", "name", "severity"),
    [
        ({"avg": 1500.0}, "high_avg_response_time", AlertSeverity.WARNING),
        ({"error_rate": 0.06}, "high_error_rate", AlertSeverity.CRITICAL),
        ({"p95": 2500.0}, "high_p95_response_time", AlertSeverity.WARNING),
    ],
)
def test_each_threshold_raises_its_alert(figures, name, severity) -> None:
    check, _ = alerting(Clock())
    raised = check.check("read_file", stats(**figures))
    assert [(a.name, a.severity) for a in raised] == [(name, severity)]
    assert raised[0].metadata["operation"] == "read_file"


def test_values_at_the_threshold_do_not_alert() -> None:
    check, _ = alerting(Clock())
    assert check.check("op", stats(avg=1000.0, error_rate=0.05, p95=2000.0)) == []


def test_the_same_alert_is_not_repeated_within_the_cooldown() -> None:
    clock = Clock()
    check, manager = alerting(clock)
    assert len(check.check("write_file", stats(error_rate=0.5))) == 1
    for _ in range(50):
        assert check.check("write_file", stats(error_rate=0.5)) == []
    assert len(check.check("read_file", stats(error_rate=0.5))) == 1  # other operation
    clock.now += 301
    assert len(check.check("write_file", stats(error_rate=0.5))) == 1
    assert len(manager.history) == 3


def test_too_few_samples_do_not_alert() -> None:
    check, _ = alerting(Clock())
    assert check.check("op", {**stats(error_rate=1.0), "count": 4}) == []


def test_alerts_are_logged_at_their_severity(caplog: pytest.LogCaptureFixture) -> None:
    check, _ = alerting(Clock())
    with caplog.at_level(logging.WARNING, logger="mcp_mesh_sdk.agent.alerts"):
        check.check("op", stats(avg=5000.0, error_rate=0.9))
    levels = {record.levelname for record in caplog.records}
    assert levels == {"WARNING", "CRITICAL"}
    assert any("CRITICAL ALERT: High error rate for op" in r.getMessage() for r in caplog.records)


def test_a_failing_alert_handler_does_not_stop_the_others() -> None:
    manager = AlertManager()
    seen = []

    def broken(alert) -> None:
        raise RuntimeError("handler down")

    manager.handlers = [broken, seen.append]
    PerformanceAlerting(manager, clock=Clock()).check("op", stats(avg=9999.0))
    assert len(seen) == 1


def test_system_sample_has_the_spec_figures(tmp_path: Path) -> None:
    snapshot = SystemSampler(tmp_path).sample().as_dict()
    for figure in ("cpu_percent", "memory_percent", "disk_usage_percent", "load_average",
                   "available_memory_mb", "free_disk_space_gb"):  # fmt: skip
        assert figure in snapshot
    assert 0 <= snapshot["memory_percent"] <= 100
    assert snapshot["disk_path"] == str(tmp_path)


def test_system_issues_follow_the_spec_limits() -> None:
    health = SystemHealth(
        cpu_percent=85.0, memory_percent=91.0, disk_usage_percent=86.0, load_average=[1, 1, 1],
        available_memory_mb=100, free_disk_space_gb=1, process_rss_mb=50, disk_path="/",
        sampled_at=0,
    )  # fmt: skip
    assert system_issues(health) == [
        "High CPU usage: 85.0%",
        "High memory usage: 91.0%",
        "High disk usage: 86.0% (/)",
    ]


def test_client_errors_are_reported_but_not_in_the_error_rate() -> None:
    monitor = PerformanceMonitor()
    for _ in range(6):
        monitor.record("read_file", 0.001, outcome="client_error")
    monitor.record("read_file", 0.001, outcome="server_error")
    monitor.record("read_file", 0.001, outcome="ok")
    stats = monitor.stats("read_file")
    assert stats["count"] == 8
    assert stats["error_rate"] == stats["server_error_rate"] == pytest.approx(1 / 8)
    assert stats["server_error_count"] == 1 and stats["client_error_count"] == 6
    assert stats["client_error_rate"] == pytest.approx(6 / 8)
    assert stats["error_count"] == 1 and stats["total_client_errors"] == 6


def test_alerting_ignores_a_surge_of_client_errors() -> None:
    monitor = PerformanceMonitor()
    check, manager = alerting(Clock())
    for _ in range(50):
        monitor.record("read_file", 0.001, outcome="client_error")
        check.check("read_file", monitor.stats("read_file"))
    assert list(manager.history) == []
    for _ in range(3):
        monitor.record("read_file", 0.001, outcome="server_error")
        check.check("read_file", monitor.stats("read_file"))
    assert [alert.name for alert in manager.history] == ["high_error_rate"]  # 3 of 53: 5.7 %


def record_calls(monitor: PerformanceMonitor, count: int, seconds: float = 0.01,
                 outcome: str = "ok", operation: str = "read_file") -> None:  # fmt: skip
    for _ in range(count):
        monitor.record(operation, seconds, outcome=outcome)


def test_health_is_degraded_by_20_percent_server_errors_until_the_window_passes() -> None:
    clock = Clock()
    monitor = PerformanceMonitor(clock=clock)
    record_calls(monitor, 8)
    record_calls(monitor, 2, outcome="server_error")
    health = performance_problems(monitor, window_seconds=60, min_samples=10)
    assert health.describe()["status"] == "degraded"
    assert health.reasons == [
        "High error rate for read_file: 20.0% (threshold 5.0%) over the last 60 s"
    ]
    assert health.operations["read_file"]["server_error_rate"] == 0.2
    clock.now += 61
    record_calls(monitor, 3)  # a few calls since: too few to judge, the burst is gone
    later = performance_problems(monitor, window_seconds=60, min_samples=10)
    assert later.reasons == [] and later.describe()["status"] == "ok"
    assert later.operations["read_file"] == {
        "count": 3, "judged": False, "server_error_rate": 0.0, "client_error_rate": 0.0,
        "avg_duration_ms": 10.0, "p95_duration_ms": 10.0,
    }  # fmt: skip


def test_health_ignores_client_errors_and_too_few_calls() -> None:
    monitor = PerformanceMonitor(clock=Clock())
    record_calls(monitor, 50, outcome="client_error")
    record_calls(monitor, 9, outcome="server_error", operation="write_file")
    assert performance_problems(monitor, min_samples=10).reasons == []


def test_health_names_slow_average_and_slow_p95() -> None:
    monitor = PerformanceMonitor(clock=Clock())
    record_calls(monitor, 10, seconds=1.2)  # average 1200 ms
    record_calls(monitor, 18, seconds=0.01, operation="file_info")
    record_calls(monitor, 2, seconds=2.5, operation="file_info")  # p95 2500 ms, average 259 ms
    reasons = performance_problems(monitor, min_samples=10).reasons
    assert reasons == [
        "High p95 response time for file_info: 2500.0 ms (threshold 2000.0 ms) over the last 60 s",
        "High average response time for read_file: 1200.0 ms (threshold 1000.0 ms) "
        "over the last 60 s",
    ]


DiskUsage = namedtuple("DiskUsage", "total used free percent")


def test_disk_percentage_counts_the_reserved_blocks_like_df(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psutil

    # 100 blocks: 80 used, 15 available, 5 reserved for root. df says 80 / 95 = 84.2 %.
    monkeypatch.setattr(psutil, "disk_usage", lambda path: DiskUsage(100, 80, 15, 84.2))
    assert SystemSampler(tmp_path).sample().disk_usage_percent == 84.2


def df_percent(path: Path) -> int:
    done = subprocess.run(["df", "--output=pcent", str(path)], capture_output=True, text=True,
                          check=True)  # fmt: skip
    return int(done.stdout.splitlines()[-1].strip().rstrip("%"))


def test_disk_percentage_is_what_df_shows(tmp_path: Path) -> None:
    reported = SystemSampler(tmp_path).sample().disk_usage_percent
    assert abs(reported - df_percent(tmp_path)) <= 1, (reported, df_percent(tmp_path))


def test_the_window_bounds_alert_exactly_as_the_full_statistics() -> None:
    """`check_monitor` skips the statistics only where they could not cross a threshold:
    over a run of slow calls, server errors, client errors and fast calls that pushes each
    threshold in and out of reach, it raises what `check(stats)` raises, call for call."""
    import random

    rng = random.Random(22)
    clock = Clock()
    monitor = PerformanceMonitor(window_size=20, clock=clock)
    quick, _ = alerting(clock)
    full, _ = alerting(clock)
    raised = {"quick": 0, "full": 0}
    for call in range(3000):
        clock.now += 7  # the cooldown (300 s) ends now and then
        phase = (call // 150) % 4  # quiet, slow, failing, mixed
        seconds = rng.choice((0.001, 0.02, 2.5 if phase in (1, 3) else 0.003, 1.0))
        outcome = rng.choice(("ok", "client_error", "server_error" if phase >= 2 else "ok"))
        monitor.record("read_file", seconds, outcome=outcome)
        bounds = monitor.window_bounds("read_file")
        assert bounds is not None
        stats = monitor.stats("read_file")
        assert bounds.count == stats["count"]
        assert bounds.server_errors == stats["window_error_count"]
        assert bounds.slowest_seconds * 1000 == stats["max_duration_ms"]
        by_quick = [a.name for a in quick.check_monitor("read_file", monitor)]
        by_full = [a.name for a in full.check("read_file", stats)]
        assert by_quick == by_full
        raised["quick"] += len(by_quick)
        raised["full"] += len(by_full)
    assert raised["quick"] > 10  # the run did cross the thresholds


def test_no_window_bounds_before_the_first_call() -> None:
    check, _ = alerting(Clock())
    monitor = PerformanceMonitor()
    assert monitor.window_bounds("read_file") is None
    assert check.check_monitor("read_file", monitor) == []
