"""Log lines that a flood repeats, at a bounded rate.

Out of file descriptors, asyncio's accept loop logs "socket.accept() out of system resource"
with a traceback for every connection it cannot accept (146 MB in 15 s under a slow-connection
flood), and the connection guard notes every connection it closes. `RateLimitFilter` lets at
most `burst` lines of one kind through per `interval` seconds; the next line that passes says
how many were suppressed meanwhile. Tracebacks of these expected errors become one short
`[Errno N] reason`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

# The loggers and messages that can repeat once per connection under a flood.
ACCEPT_ERROR = "socket.accept() out of system resource"
INTERVAL = 10.0
BURST = 3


class RateLimitFilter(logging.Filter):
    """At most `burst` records per message template per `interval` seconds.

    `only` limits the filter to the templates whose first line starts with one of its
    prefixes (None: every template); those are cut to their first line.
    """

    def __init__(
        self,
        *,
        interval: float = INTERVAL,
        burst: int = BURST,
        only: tuple[str, ...] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.interval = interval
        self.burst = burst
        self.only = only
        self.clock = clock
        self._windows: dict[str, tuple[float, int, int]] = {}  # started, passed, suppressed

    def filter(self, record: logging.LogRecord) -> bool:
        template = str(record.msg)
        if self.only is not None:
            if not template.startswith(self.only):
                return True
            template = template.split("\n", 1)[0]
        now = self.clock()
        started, passed, suppressed = self._windows.get(template, (now, 0, 0))
        if now - started >= self.interval:
            started, passed = now, 0
        if passed >= self.burst:
            self._windows[template] = (started, passed, suppressed + 1)
            return False
        self._windows[template] = (started, passed + 1, 0)
        record.msg = f"{template} ({suppressed} more suppressed)" if suppressed else template
        _shorten_expected_error(record)
        return True


def _shorten_expected_error(record: logging.LogRecord) -> None:
    """An OSError's traceback becomes `: [Errno N] reason` on the line itself."""
    if record.exc_info and isinstance(record.exc_info[1], OSError):
        error = record.exc_info[1]
        record.msg = f"{record.msg}: [Errno {error.errno}] {error.strerror}"
        record.exc_info = None
        record.exc_text = None


def limit_flood_logs() -> None:
    """Rate-limit asyncio's accept errors and the connection guard's notes (idempotent)."""
    targets: tuple[tuple[str, tuple[str, ...] | None], ...] = (
        ("asyncio", (ACCEPT_ERROR,)),
        ("mcp_mesh_sdk.serving.connections", None),
    )
    for name, only in targets:
        target = logging.getLogger(name)
        if not any(isinstance(f, RateLimitFilter) for f in target.filters):
            target.addFilter(RateLimitFilter(only=only))
