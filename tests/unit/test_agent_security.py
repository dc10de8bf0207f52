"""The security monitor: counting per source, blocking thresholds, the window, the summary."""

from __future__ import annotations

from mcp_mesh_sdk.agent.security import SecurityEventType, SecurityMonitor

TRAVERSAL = SecurityEventType.PATH_TRAVERSAL_ATTEMPT
UNAUTHORIZED = SecurityEventType.UNAUTHORIZED_ACCESS


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def monitor(clock: Clock) -> SecurityMonitor:
    return SecurityMonitor(clock=clock)


def test_five_traversal_attempts_are_tolerated_the_sixth_blocks() -> None:
    clock = Clock()
    security = monitor(clock)
    for _ in range(5):
        security.record(TRAVERSAL, "10.0.0.9", "../etc/passwd")
    assert not security.is_blocked("10.0.0.9")
    security.record(TRAVERSAL, "10.0.0.9", "../etc/shadow")
    assert security.is_blocked("10.0.0.9")
    assert not security.is_blocked("10.0.0.10")


def test_more_than_one_hundred_events_of_any_kind_block() -> None:
    clock = Clock()
    security = monitor(clock)
    for _ in range(100):
        security.record(UNAUTHORIZED, "10.0.0.7", "/mcp")
    assert not security.is_blocked("10.0.0.7")
    security.record(SecurityEventType.INVALID_FILE_TYPE, "10.0.0.7", "x.sh")
    assert security.is_blocked("10.0.0.7")


def test_events_older_than_the_window_no_longer_count() -> None:
    clock = Clock()
    security = monitor(clock)
    for _ in range(5):
        security.record(TRAVERSAL, "10.0.0.5", "..")
    clock.now += 61 * 60
    security.record(TRAVERSAL, "10.0.0.5", "..")
    assert not security.is_blocked("10.0.0.5")
    assert security.summary()["total_events"] == 1


def test_a_block_lasts_one_window() -> None:
    clock = Clock()
    security = monitor(clock)
    for _ in range(6):
        security.record(TRAVERSAL, "10.0.0.4", "..")
    clock.now += 59 * 60
    assert security.is_blocked("10.0.0.4")
    clock.now += 2 * 60
    assert not security.is_blocked("10.0.0.4")


def test_listeners_hear_every_event_and_each_new_block_once() -> None:
    clock = Clock()
    security = monitor(clock)
    events, blocks = [], []
    security.event_listeners.append(events.append)
    security.block_listeners.append(lambda ip, reason: blocks.append((ip, reason)))
    for _ in range(8):
        security.record(TRAVERSAL, "10.0.0.3", "..")
    assert len(events) == 8
    assert blocks == [("10.0.0.3", "more than 5 path traversal attempts")]


def test_summary_has_the_spec_shape() -> None:
    clock = Clock()
    security = monitor(clock)
    security.record(TRAVERSAL, "10.0.0.1", "../a")
    security.record(UNAUTHORIZED, "10.0.0.2", "/mcp")
    security.record(UNAUTHORIZED, "10.0.0.2", "/mcp")
    summary = security.summary()
    assert summary["total_events"] == 3
    assert summary["events_by_type"] == {"path_traversal_attempt": 1, "unauthorized_access": 2}
    assert list(summary["top_sources"].items()) == [("10.0.0.2", 2), ("10.0.0.1", 1)]
    assert summary["blocked_ips"] == []
    assert summary["window_minutes"] == 60
    assert summary["recent_events"][0]["severity"] == "high"


def test_history_is_bounded_and_counts_stay_consistent() -> None:
    clock = Clock()
    security = SecurityMonitor(clock=clock, max_events_kept=10, max_events_per_source=1000)
    for n in range(25):
        security.record(UNAUTHORIZED, f"10.0.1.{n % 2}", "/mcp")
    summary = security.summary()
    assert summary["total_events"] == 10
    assert sum(summary["top_sources"].values()) == 10
