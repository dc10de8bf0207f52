"""Security events and source blocking that no client can turn against another.

Every refused request is a security event of its source: the client address, which is the
X-Forwarded-For address when a trusted proxy forwarded the request (uvicorn's proxy headers,
MCP_MESH_TRUSTED_PROXIES). Each source keeps its own counts over a sliding window
(MCP_MESH_SECURITY_WINDOW minutes, counted in twelfths of it), so no other source's events can
push them out, and a source is blocked for one window from its offence:

- more than THRESHOLD requests without a valid token (MCP_MESH_SECURITY_THRESHOLD, 401s): its
  requests *without a valid token* get 403. A valid token still passes: the token is the
  authority, and a flood of wrong tokens through a proxy that is not trusted then cannot lock
  out the proxy's valid clients;
- more than 5 path traversal attempts, or more than THRESHOLD other events (refused file calls,
  which are made with the token): every request of the source gets 403.

A trusted proxy's own address is never blocked (its events count; a warning says so once a
window). At most MAX_SOURCES sources are tracked: when full, the sources with nothing left in
the window go first, then the tenth with the fewest events; a blocked source never goes, so a
flood from many addresses cannot free an offender. Memory stays bounded whatever clients send.

Refused calls are client errors (`paths.Outcome`), so they never count in the error rate behind
the performance alerts, the incidents or a degraded /health/detailed. Blocks live in memory: a
restart lifts them, and so does `unblock()` (`mcp-mesh-sdk security unblock SOURCE`).
"""

from __future__ import annotations

import enum
import heapq
import ipaddress
import logging
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger("mcp_mesh_sdk.agent.security")

SLOTS = 12  # the window is counted in this many slots: an event counts for 11/12 to 1 window
MAX_SOURCES = 10_000  # sources tracked at once (about 0.7 kB each: 7 MB at most)
MAX_SOURCE_LENGTH = 64  # longer client strings (a proxy's odd X-Forwarded-For) are cut
RECENT_EVENTS = 20
EVENT_LINES_PER_SECOND = 20  # security event log lines; the rest are counted, not written
SHOWN_BLOCKS = 50  # blocked sources /health/detailed names (the count is always complete)


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
EVENT_TYPES = list(SecurityEventType)


class BlockScope(enum.Enum):
    UNAUTHENTICATED = "unauthenticated"  # requests without a valid token are refused
    ALL = "all"  # every request is refused


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


@dataclass(frozen=True)
class Block:
    source: str
    scope: BlockScope
    reason: str
    since: float
    until: float

    def describe(self) -> dict[str, str]:
        return {
            "source": self.source,
            "scope": self.scope.value,
            "reason": self.reason,
            "since": _iso(self.since),
            "until": _iso(self.until),
        }


class SlidingCounts:
    """Counts of `kinds` kinds of event over the last `slots` slots (a ring: fixed memory)."""

    __slots__ = ("_counts", "_kinds", "_newest", "_slots")

    def __init__(self, kinds: int, slots: int = SLOTS) -> None:
        self._kinds = kinds
        self._slots = slots
        self._counts = array("Q", bytes(8 * kinds * slots))
        self._newest = 0

    def add(self, slot: int, kind: int) -> None:
        self._advance(slot)
        index = (max(slot, self._newest) % self._slots) * self._kinds + kind
        self._counts[index] += 1

    def totals(self, slot: int) -> list[int]:
        """Each kind's count over the window that ends with `slot`."""
        self._advance(slot)
        sums = [0] * self._kinds
        for index, count in enumerate(self._counts):
            if count:
                sums[index % self._kinds] += count
        return sums

    def _advance(self, slot: int) -> None:
        """Empty the slots that left the window since the newest one seen."""
        if slot <= self._newest:  # the same slot, or a clock that went back
            return
        kinds = self._kinds
        if slot - self._newest >= self._slots:
            self._counts = array("Q", bytes(8 * kinds * self._slots))
        else:
            for passed in range(self._newest + 1, slot + 1):
                start = (passed % self._slots) * kinds
                self._counts[start : start + kinds] = array("Q", bytes(8 * kinds))
        self._newest = slot


# A source's own counts: requests without a valid token, traversal attempts, other events.
UNAUTHENTICATED, TRAVERSAL, OTHER = range(3)


class _Source:
    __slots__ = ("counts", "exempt", "last_seen", "warned_until")

    def __init__(self, exempt: bool, now: float) -> None:
        self.counts = SlidingCounts(3)
        self.exempt = exempt
        self.last_seen = now
        self.warned_until = 0.0


class LogBudget:
    """At most `per_second` lines a second; `take()` says how many were skipped before."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self._second = -1
        self._used = 0
        self._skipped = 0

    def take(self, now: float) -> int | None:
        """None: skip this line; else write it, after a note of this many skipped ones."""
        second = int(now)
        if second != self._second:
            self._second, self._used = second, 0
        if self._used >= self.per_second:
            self._skipped += 1
            return None
        self._used += 1
        skipped, self._skipped = self._skipped, 0
        return skipped


class TrustedProxies:
    """The MCP_MESH_TRUSTED_PROXIES addresses and networks: never blocked themselves."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.networks = []
        for entry in entries:  # the config refuses anything else (and `*`) before this
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                logger.warning("trusted proxy %r is not an address or network; ignored", entry)

    def __contains__(self, source: str) -> bool:
        try:
            address = ipaddress.ip_address(source)
        except ValueError:
            return False
        mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:10.0.0.1 on a dual-stack socket
        candidates = [address] if mapped is None else [address, mapped]
        return any(
            candidate in network
            for candidate in candidates
            for network in self.networks
            if candidate.version == network.version
        )


class SecurityMonitor:
    """Counts each source's events in the window and decides who is blocked."""

    def __init__(
        self,
        *,
        window_minutes: int = 60,
        max_events_per_source: int = 100,
        max_traversal_attempts: int = 5,
        trusted_proxies: Iterable[str] = (),
        max_sources: int = MAX_SOURCES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window_minutes = window_minutes
        self.window_seconds = window_minutes * 60
        self.max_events_per_source = max_events_per_source
        self.max_traversal_attempts = max_traversal_attempts
        self.max_sources = max_sources
        self.trusted_proxies = TrustedProxies(trusted_proxies)
        self._slot_seconds = self.window_seconds / SLOTS
        self._clock = clock
        self._sources: dict[str, _Source] = {}
        self._blocks: dict[str, Block] = {}
        self._by_type = SlidingCounts(len(EVENT_TYPES))
        self._recent: deque[SecurityEvent] = deque(maxlen=RECENT_EVENTS)
        self._untracked_warned_until = 0.0
        self._no_room_until = 0.0
        self._log_budget = LogBudget(EVENT_LINES_PER_SECOND)
        self.event_listeners: list[Callable[[SecurityEvent], None]] = []
        self.block_listeners: list[Callable[[str, str], None]] = []

    # -- recording and deciding --------------------------------------------------------------
    def record(
        self,
        event_type: SecurityEventType,
        source_ip: str,
        resource: str,
        details: dict[str, Any] | None = None,
        user_id: str = "anonymous",
    ) -> SecurityEvent:
        """`user_id`: the client the request authenticated as (`agent.clients`)."""
        now = self._clock()
        source_ip = _clean(source_ip)
        event = SecurityEvent(event_type, now, source_ip, resource, dict(details or {}), user_id)
        slot = self._slot(now)
        self._by_type.add(slot, EVENT_TYPES.index(event_type))
        self._recent.append(event)
        source = self._source(source_ip, now)
        counts = None
        if source is not None:
            source.last_seen = now
            source.counts.add(slot, _kind(event_type))
            counts = source.counts.totals(slot)
        # Past a limit the block line speaks for the source; beyond the budget, a count does.
        if counts is not None and not self._over_a_limit(counts):
            self._log_event(event, now)
        for listener in self.event_listeners:
            listener(event)
        if source is not None and counts is not None:
            self._maybe_block(source_ip, source, counts, now)
        return event

    def is_blocked(self, source_ip: str, *, authenticated: bool = False) -> bool:
        """Whether a request from `source_ip` is refused: every request of a source blocked
        for everything, and those without a valid token (`authenticated` False) of any block."""
        if not self._blocks:
            return False
        block = self.block_of(source_ip)
        if block is None:
            return False
        return not authenticated or block.scope is BlockScope.ALL

    def block_of(self, source_ip: str) -> Block | None:
        """The source's block while it lasts (an ended one is forgotten here)."""
        source_ip = _clean(source_ip)
        block = self._blocks.get(source_ip)
        if block is None:
            return None
        if block.until <= self._clock():
            del self._blocks[source_ip]
            return None
        return block

    def unblock(self, source_ip: str) -> Block | None:
        """Lift the block of `source_ip` at once and forget its counts; the lifted block, or
        None when it was not blocked. An address is matched in any spelling (`::1` = `0::1`)."""
        key = self._blocked_key(source_ip.strip())
        if key is None:
            return None
        block = self._blocks.pop(key)
        self._sources.pop(key, None)
        logger.warning(
            "block of %s lifted by an operator",
            key,
            extra={"fields": {"source_ip": key, "scope": block.scope.value}},
        )
        return block if block.until > self._clock() else None

    # -- what the endpoints report ---------------------------------------------------------------
    def blocks(self) -> list[Block]:
        """The blocks in force, oldest first."""
        now = self._clock()
        for ended in [ip for ip, block in self._blocks.items() if block.until <= now]:
            del self._blocks[ended]
        return sorted(self._blocks.values(), key=lambda block: (block.since, block.source))

    def blocked_count(self) -> int:
        return len(self.blocks())

    def events_in_window(self) -> int:
        return sum(self._by_type.totals(self._slot(self._clock())))

    def settings(self) -> dict[str, Any]:
        return {
            "window_minutes": self.window_minutes,
            "threshold": self.max_events_per_source,
            "max_traversal_attempts": self.max_traversal_attempts,
            "tracked_sources": len(self._sources),
            "max_sources": self.max_sources,
        }

    def health(self) -> dict[str, Any]:
        """For /health/detailed: counts and the blocked addresses (nothing secret)."""
        blocks = self.blocks()
        return {
            "events_in_window": self.events_in_window(),
            "blocked_sources": len(blocks),
            "blocked": [block.source for block in blocks[:SHOWN_BLOCKS]],
            "window_minutes": self.window_minutes,
            "threshold": self.max_events_per_source,
        }

    def summary(self) -> dict[str, Any]:
        """The spec's security summary: events in the window by type and source, who is blocked."""
        slot = self._slot(self._clock())
        by_type = self._by_type.totals(slot)
        per_source = ((sum(source.counts.totals(slot)), ip) for ip, source in self._sources.items())
        top = heapq.nlargest(10, ((count, ip) for count, ip in per_source if count))
        blocks = self.blocks()
        return {
            "total_events": sum(by_type),
            "events_by_type": {
                kind.value: count for kind, count in zip(EVENT_TYPES, by_type, strict=True) if count
            },
            "top_sources": {ip: count for count, ip in top},
            "blocked_ips": sorted(block.source for block in blocks),
            "blocked_until": {block.source: _iso(block.until) for block in blocks},
            "blocks": [block.describe() for block in blocks],
            "window_minutes": self.window_minutes,
            "recent_events": [_describe(event) for event in self._recent],
        }

    # -- internals -------------------------------------------------------------------------------
    def _log_event(self, event: SecurityEvent, now: float) -> None:
        skipped = self._log_budget.take(now)
        if skipped is None:
            return
        if skipped:
            logger.warning(
                "%d security event line(s) not written (more than %d a second); the metrics "
                "and /security/summary count every event",
                skipped,
                EVENT_LINES_PER_SECOND,
            )
        logger.warning(
            "security event %s from %s on %s",
            event.event_type.value,
            event.source_ip,
            event.resource,
            extra={
                "fields": {
                    "event_type": event.event_type.value,
                    "source_ip": event.source_ip,
                    "resource": event.resource,
                    "severity": event.severity,
                    "user_id": event.user_id,
                }
            },
        )

    def _slot(self, now: float) -> int:
        return int(now // self._slot_seconds)

    def _over_a_limit(self, counts: list[int]) -> bool:
        return self._offence(counts) is not None

    def _offence(self, counts: list[int]) -> tuple[BlockScope, str] | None:
        limit = self.max_events_per_source
        if counts[TRAVERSAL] > self.max_traversal_attempts:
            return (
                BlockScope.ALL,
                f"more than {self.max_traversal_attempts} path traversal attempts",
            )
        if counts[TRAVERSAL] + counts[OTHER] > limit:
            return BlockScope.ALL, f"more than {limit} refused calls"
        if counts[UNAUTHENTICATED] > limit:
            return BlockScope.UNAUTHENTICATED, f"more than {limit} requests without a valid token"
        return None

    def _maybe_block(self, source_ip: str, source: _Source, counts: list[int], now: float) -> None:
        offence = self._offence(counts)
        if offence is None:
            return
        scope, reason = offence
        if source.exempt:
            if source.warned_until <= now:
                source.warned_until = now + self.window_seconds
                logger.warning(
                    "trusted proxy %s itself caused %s in %d min; a trusted proxy is never "
                    "blocked (do its requests lack X-Forwarded-For?)",
                    source_ip,
                    reason,
                    self.window_minutes,
                    extra={"fields": {"source_ip": source_ip, "reason": reason}},
                )
            return
        current = self.block_of(source_ip)
        if current is not None and (current.scope is BlockScope.ALL or scope is current.scope):
            since = current.since
        else:
            since = now
        self._blocks[source_ip] = Block(source_ip, scope, reason, since, now + self.window_seconds)
        if current is None or current.scope is not scope:
            logger.critical(
                "blocking %s for %d min (%s requests): %s",
                source_ip,
                self.window_minutes,
                "all" if scope is BlockScope.ALL else "unauthenticated",
                reason,
                extra={"fields": {"source_ip": source_ip, "reason": reason, "scope": scope.value}},
            )
            for listener in self.block_listeners:
                listener(source_ip, reason)

    def _source(self, source_ip: str, now: float) -> _Source | None:
        """The source's counts, made room for when new; None when every tracked source is
        blocked (the event is still counted by type and heard by the listeners)."""
        source = self._sources.get(source_ip)
        if source is not None:
            return source
        if len(self._sources) >= self.max_sources and now >= self._no_room_until:
            self._make_room(now)
        if len(self._sources) >= self.max_sources:
            if self._untracked_warned_until <= now:
                self._untracked_warned_until = now + self.window_seconds
                logger.warning(
                    "security monitor full: %d sources tracked, nearly all blocked; new sources "
                    "are not counted until blocks end (mcp-mesh-sdk security list)",
                    len(self._sources),
                )
            return None
        source = self._sources[source_ip] = _Source(source_ip in self.trusted_proxies, now)
        return source

    def _make_room(self, now: float) -> None:
        """Forget sources with nothing left in the window, else the tenth with the fewest
        events (the least recently seen first); never a blocked source. When that frees
        almost nothing (nearly all are blocked), new sources wait a slot before the next try:
        scanning the table for every new address would let a flood buy CPU."""
        slot = self._slot(now)
        candidates = []
        for ip, source in self._sources.items():
            block = self._blocks.get(ip)
            if block is not None and block.until > now:
                continue
            candidates.append((sum(source.counts.totals(slot)), source.last_seen, ip))
        idle = [ip for count, _, ip in candidates if count == 0]
        freed = idle or [
            ip for _, _, ip in heapq.nsmallest(max(1, self.max_sources // 10), candidates)
        ]
        for ip in freed:
            del self._sources[ip]
        if len(freed) < max(1, self.max_sources // 100):
            self._no_room_until = now + self._slot_seconds

    def _blocked_key(self, source_ip: str) -> str | None:
        key = _clean(source_ip)
        if key in self._blocks:
            return key
        try:
            wanted = ipaddress.ip_address(source_ip)
        except ValueError:
            return None
        for blocked in self._blocks:
            try:
                if ipaddress.ip_address(blocked) == wanted:
                    return blocked
            except ValueError:
                continue
        return None


def _kind(event_type: SecurityEventType) -> int:
    if event_type is SecurityEventType.UNAUTHORIZED_ACCESS:
        return UNAUTHENTICATED
    if event_type is SecurityEventType.PATH_TRAVERSAL_ATTEMPT:
        return TRAVERSAL
    return OTHER


def _clean(source_ip: str) -> str:
    return source_ip if len(source_ip) <= MAX_SOURCE_LENGTH else source_ip[:MAX_SOURCE_LENGTH]


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def _describe(event: SecurityEvent) -> dict[str, Any]:
    return {
        "event_type": event.event_type.value,
        "timestamp": _iso(event.timestamp),
        "source_ip": event.source_ip,
        "resource": event.resource,
        "severity": event.severity,
        "user_id": event.user_id,
        "details": event.details,
    }
