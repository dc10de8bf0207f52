"""Security events and source blocking, as the spec's security monitor describes.

Every refused request is recorded with its source address. Within a sliding window (60 min
by default) a source is blocked when it makes more than 5 path traversal attempts or causes
more than 100 events of any kind; a block lasts one window from the offence that caused it.

This is where a surge of refusals shows: refused calls are client errors (`paths.Outcome`), so
they never count in the error rate behind the performance alerts, the incidents or a degraded
/health/detailed.
"""

from __future__ import annotations

import enum
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("mcp_mesh_sdk.agent.security")


class SecurityEventType(enum.Enum):
    PATH_TRAVERSAL_ATTEMPT = "path_traversal_attempt"
    UNAUTHORIZED_ACCESS = "unauthorized_access"
    SUSPICIOUS_FILE_ACCESS = "suspicious_file_access"
    RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
    INVALID_FILE_TYPE = "invalid_file_type"
    LARGE_FILE_ATTEMPT = "large_file_attempt"


SEVERITY = {
    SecurityEventType.PATH_TRAVERSAL_ATTEMPT: "high",
    SecurityEventType.UNAUTHORIZED_ACCESS: "medium",
    SecurityEventType.SUSPICIOUS_FILE_ACCESS: "medium",
    SecurityEventType.RATE_LIMIT_EXCEEDED: "medium",
    SecurityEventType.INVALID_FILE_TYPE: "low",
    SecurityEventType.LARGE_FILE_ATTEMPT: "low",
}


@dataclass(frozen=True)
class SecurityEvent:
    event_type: SecurityEventType
    timestamp: float
    source_ip: str
    resource: str
    details: dict[str, Any] = field(default_factory=dict)
    user_id: str = "anonymous"

    @property
    def severity(self) -> str:
        return SEVERITY[self.event_type]


class SecurityMonitor:
    """Keeps the window's events, counts them per source and decides who is blocked."""

    def __init__(
        self,
        *,
        window_minutes: int = 60,
        max_events_per_source: int = 100,
        max_traversal_attempts: int = 5,
        max_events_kept: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window_seconds = window_minutes * 60
        self.window_minutes = window_minutes
        self.max_events_per_source = max_events_per_source
        self.max_traversal_attempts = max_traversal_attempts
        self._clock = clock
        self._events: deque[SecurityEvent] = deque(maxlen=max_events_kept)
        self._per_source: Counter[str] = Counter()
        self._traversals: Counter[str] = Counter()
        self._blocked_until: dict[str, float] = {}
        self.event_listeners: list[Callable[[SecurityEvent], None]] = []
        self.block_listeners: list[Callable[[str, str], None]] = []

    def record(
        self,
        event_type: SecurityEventType,
        source_ip: str,
        resource: str,
        details: dict[str, Any] | None = None,
    ) -> SecurityEvent:
        now = self._clock()
        event = SecurityEvent(event_type, now, source_ip, resource, dict(details or {}))
        self._prune(now)
        if len(self._events) == self._events.maxlen:
            self._forget(self._events[0])
        self._events.append(event)
        self._per_source[source_ip] += 1
        if event_type is SecurityEventType.PATH_TRAVERSAL_ATTEMPT:
            self._traversals[source_ip] += 1
        logger.warning(
            "security event %s from %s on %s",
            event_type.value,
            source_ip,
            resource,
            extra={
                "fields": {
                    "event_type": event_type.value,
                    "source_ip": source_ip,
                    "resource": resource,
                    "severity": event.severity,
                }
            },
        )
        for listener in self.event_listeners:
            listener(event)
        self._maybe_block(source_ip, now)
        return event

    def is_blocked(self, source_ip: str) -> bool:
        until = self._blocked_until.get(source_ip)
        if until is None:
            return False
        if until <= self._clock():
            del self._blocked_until[source_ip]
            return False
        return True

    def summary(self) -> dict[str, Any]:
        """The spec's security summary: events in the window by type and source, who is blocked."""
        now = self._clock()
        self._prune(now)
        by_type: Counter[str] = Counter(event.event_type.value for event in self._events)
        top = sorted(self._per_source.items(), key=lambda item: item[1], reverse=True)[:10]
        blocked = {ip: until for ip, until in self._blocked_until.items() if until > now}
        return {
            "total_events": len(self._events),
            "events_by_type": dict(by_type),
            "top_sources": dict(top),
            "blocked_ips": sorted(blocked),
            "blocked_until": {ip: _iso(until) for ip, until in sorted(blocked.items())},
            "window_minutes": self.window_minutes,
            "recent_events": [_describe(event) for event in list(self._events)[-20:]],
        }

    def blocked_count(self) -> int:
        now = self._clock()
        return sum(1 for until in self._blocked_until.values() if until > now)

    # -- internals -----------------------------------------------------------------------------
    def _maybe_block(self, source_ip: str, now: float) -> None:
        reason = None
        if self._traversals[source_ip] > self.max_traversal_attempts:
            reason = f"more than {self.max_traversal_attempts} path traversal attempts"
        elif self._per_source[source_ip] > self.max_events_per_source:
            reason = f"more than {self.max_events_per_source} security events"
        if reason is None:
            return
        first_block = not self.is_blocked(source_ip)
        self._blocked_until[source_ip] = now + self.window_seconds
        if first_block:
            logger.critical(
                "blocking %s for %d min: %s",
                source_ip,
                self.window_minutes,
                reason,
                extra={"fields": {"source_ip": source_ip, "reason": reason}},
            )
            for listener in self.block_listeners:
                listener(source_ip, reason)

    def _prune(self, now: float) -> None:
        cutoff = now - self.window_seconds
        while self._events and self._events[0].timestamp < cutoff:
            self._forget(self._events.popleft())

    def _forget(self, event: SecurityEvent) -> None:
        """Take an event that leaves the window (or the bounded history) out of the counts."""
        _decrement(self._per_source, event.source_ip)
        if event.event_type is SecurityEventType.PATH_TRAVERSAL_ATTEMPT:
            _decrement(self._traversals, event.source_ip)


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def _iso(timestamp: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def _describe(event: SecurityEvent) -> dict[str, Any]:
    return {
        "event_type": event.event_type.value,
        "timestamp": _iso(event.timestamp),
        "source_ip": event.source_ip,
        "resource": event.resource,
        "severity": event.severity,
        "details": event.details,
    }
