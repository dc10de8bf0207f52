"""The security monitor: per-source counts no other source can flush, the two kinds of block,
trusted proxies that are never blocked, bounded memory and log, unblock, the summary."""

from __future__ import annotations

import logging

import pytest

from mcp_mesh_sdk.agent.security import (
    MAX_SOURCE_LENGTH,
    BlockScope,
    SecurityEventType,
    SecurityMonitor,
)

TRAVERSAL = SecurityEventType.PATH_TRAVERSAL_ATTEMPT
UNAUTHORIZED = SecurityEventType.UNAUTHORIZED_ACCESS
INVALID_TYPE = SecurityEventType.INVALID_FILE_TYPE


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def monitor(clock: Clock, **settings: object) -> SecurityMonitor:
    return SecurityMonitor(clock=clock, **settings)  # type: ignore[arg-type]


def flood(security: SecurityMonitor, source: str, times: int, kind=UNAUTHORIZED) -> None:
    for _ in range(times):
        security.record(kind, source, "/mcp")


def test_five_traversal_attempts_are_tolerated_the_sixth_blocks_everything() -> None:
    security = monitor(Clock())
    flood(security, "10.0.0.9", 5, TRAVERSAL)
    assert not security.is_blocked("10.0.0.9")
    security.record(TRAVERSAL, "10.0.0.9", "../etc/shadow")
    assert security.is_blocked("10.0.0.9")
    assert security.is_blocked("10.0.0.9", authenticated=True)  # the token does not help
    assert not security.is_blocked("10.0.0.10")


def test_a_wrong_token_flood_blocks_the_source_s_unauthenticated_requests_only() -> None:
    security = monitor(Clock())
    flood(security, "203.0.113.7", 100)
    assert not security.is_blocked("203.0.113.7")
    flood(security, "203.0.113.7", 1)
    assert security.is_blocked("203.0.113.7")  # no valid token: refused
    assert not security.is_blocked("203.0.113.7", authenticated=True)  # the token still passes
    [block] = security.blocks()
    assert (block.scope, block.reason) == (
        BlockScope.UNAUTHENTICATED,
        "more than 100 requests without a valid token",
    )


def test_more_than_threshold_refused_calls_block_everything() -> None:
    security = monitor(Clock())
    flood(security, "10.0.0.7", 100, INVALID_TYPE)
    assert not security.is_blocked("10.0.0.7")
    flood(security, "10.0.0.7", 1, INVALID_TYPE)
    assert security.is_blocked("10.0.0.7", authenticated=True)


def test_wrong_tokens_and_refused_calls_are_counted_apart() -> None:
    """A proxy that is not trusted carries many clients: one client's wrong tokens plus another's
    refused calls must not add up to a block of every request."""
    security = monitor(Clock())
    flood(security, "10.0.0.8", 100)
    flood(security, "10.0.0.8", 100, INVALID_TYPE)
    assert not security.is_blocked("10.0.0.8")


def test_window_and_threshold_are_configurable() -> None:
    clock = Clock()
    security = monitor(clock, window_minutes=5, max_events_per_source=3)
    flood(security, "10.0.0.5", 3)
    clock.now += 5 * 60 + 1  # the three left the window
    flood(security, "10.0.0.5", 3)
    assert not security.is_blocked("10.0.0.5")
    flood(security, "10.0.0.5", 1)
    assert security.is_blocked("10.0.0.5")
    clock.now += 4 * 60
    assert security.is_blocked("10.0.0.5")
    clock.now += 61  # a block lasts one window
    assert not security.is_blocked("10.0.0.5")
    assert security.settings()["window_minutes"] == 5
    assert security.settings()["threshold"] == 3


def test_default_window_is_an_hour_and_a_block_lasts_one() -> None:
    clock = Clock()
    security = monitor(clock)
    flood(security, "10.0.0.4", 5, TRAVERSAL)
    clock.now += 61 * 60
    flood(security, "10.0.0.4", 1, TRAVERSAL)
    assert not security.is_blocked("10.0.0.4")
    flood(security, "10.0.0.4", 5, TRAVERSAL)
    clock.now += 59 * 60
    assert security.is_blocked("10.0.0.4")
    clock.now += 2 * 60
    assert not security.is_blocked("10.0.0.4")


def test_other_sources_cannot_flush_an_attacker_s_history() -> None:
    """The old monitor kept one deque of 10,000 events for everyone: 10,000 events from
    elsewhere erased an attacker's 99."""
    security = monitor(Clock())
    flood(security, "198.51.100.66", 99)
    flood(security, "192.0.2.1", 20_000)  # one busy source
    for n in range(20_000):  # and as many others as the table holds, and more
        security.record(UNAUTHORIZED, f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", "/mcp")
    flood(security, "198.51.100.66", 2)
    assert security.is_blocked("198.51.100.66")


def test_tracked_sources_are_bounded_and_blocked_ones_are_never_evicted() -> None:
    security = monitor(Clock(), max_sources=1000)
    flood(security, "203.0.113.9", 101)
    for n in range(30_000):
        security.record(UNAUTHORIZED, f"2001:db8::{n:x}", "/mcp")
        assert security.settings()["tracked_sources"] <= 1000
    assert security.is_blocked("203.0.113.9")
    assert security.blocked_count() == 1


def test_a_table_full_of_blocks_stops_tracking_new_sources_not_the_blocks() -> None:
    security = monitor(Clock(), max_sources=10, max_events_per_source=2)
    for n in range(10):
        flood(security, f"10.0.1.{n}", 3)
    assert security.blocked_count() == 10
    flood(security, "10.0.2.1", 50)
    assert not security.is_blocked("10.0.2.1")  # not tracked: no count, no block
    assert security.blocked_count() == 10
    assert security.events_in_window() == 80  # every event still counts by type


def test_a_trusted_proxy_s_own_address_is_never_blocked(caplog: pytest.LogCaptureFixture) -> None:
    security = monitor(Clock(), trusted_proxies=("127.0.0.1", "10.9.0.0/16", "::1"))
    with caplog.at_level(logging.WARNING, logger="mcp_mesh_sdk.agent.security"):
        for source in ("127.0.0.1", "10.9.3.4", "::ffff:10.9.3.5", "::1"):
            flood(security, source, 200)
            flood(security, source, 10, TRAVERSAL)
            assert not security.is_blocked(source), source
    warnings = [r.getMessage() for r in caplog.records if "trusted proxy" in r.getMessage()]
    assert len(warnings) == 4  # once a window for each
    flood(security, "10.10.0.1", 101)  # outside the trusted network
    assert security.is_blocked("10.10.0.1")


def test_unblock_lifts_at_once_and_forgets_the_counts() -> None:
    security = monitor(Clock())
    flood(security, "2001:db8::7", 101)
    assert security.is_blocked("2001:db8::7")
    lifted = security.unblock("2001:0db8:0:0::7")  # any spelling of the address
    assert lifted is not None and lifted.source == "2001:db8::7"
    assert not security.is_blocked("2001:db8::7")
    flood(security, "2001:db8::7", 100)
    assert not security.is_blocked("2001:db8::7")  # a fresh count, not 201
    assert security.unblock("2001:db8::7") is None
    assert security.unblock("not-an-address") is None


def test_log_lines_are_bounded_whatever_the_number_of_sources(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    security = monitor(clock)
    with caplog.at_level(logging.WARNING, logger="mcp_mesh_sdk.agent.security"):
        for n in range(2000):
            security.record(UNAUTHORIZED, f"10.1.{n // 256}.{n % 256}", "/mcp")
        clock.now += 1
        security.record(UNAUTHORIZED, "10.2.0.1", "/mcp")
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 22  # 20 in the first second, then the note and one event
    assert lines[20].startswith("1980 security event line(s) not written")
    assert security.events_in_window() == 2001


def test_a_long_source_string_is_cut() -> None:
    security = monitor(Clock())
    flood(security, "x" * 10_000, 101)
    [block] = security.blocks()
    assert len(block.source) == MAX_SOURCE_LENGTH
    assert security.is_blocked("x" * 10_000)


def test_listeners_hear_every_event_and_each_new_block_once() -> None:
    security = monitor(Clock())
    events, blocks = [], []
    security.event_listeners.append(events.append)
    security.block_listeners.append(lambda ip, reason: blocks.append((ip, reason)))
    flood(security, "10.0.0.3", 8, TRAVERSAL)
    assert len(events) == 8
    assert blocks == [("10.0.0.3", "more than 5 path traversal attempts")]


def test_health_names_the_blocked_sources() -> None:
    security = monitor(Clock())
    flood(security, "10.0.0.2", 101)
    flood(security, "10.0.0.1", 1)
    health = security.health()
    assert health == {
        "events_in_window": 102,
        "blocked_sources": 1,
        "blocked": ["10.0.0.2"],
        "window_minutes": 60,
        "threshold": 100,
    }


def test_summary_has_the_spec_shape() -> None:
    security = monitor(Clock())
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
