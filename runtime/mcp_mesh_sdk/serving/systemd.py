"""What a service tells systemd (see `sdnotify`), sent from its serving event loop.

`READY=1` the first time the service may serve, `STATUS=` whenever its status line changes,
`STOPPING=1` once when it begins to stop, and `WATCHDOG=1` at half of $WATCHDOG_USEC: a loop
that hangs stops the pings and systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from mcp_mesh_sdk import sdnotify

logger = logging.getLogger("mcp_mesh_sdk.serving")


class Standing(NamedTuple):
    """Whether systemd may be told the service is ready, and its `STATUS=` line."""

    may_serve: bool
    status: str


class SystemdReporter:
    """Tells systemd READY=1 once, when `standing()` first allows it, and STATUS= on changes.

    The service calls `changed()` whenever something its standing depends on changed; `run()`
    (started by the server once it listens) re-evaluates it then.
    """

    def __init__(self, standing: Callable[[], Standing]) -> None:
        self._standing = standing
        self._changed = asyncio.Event()
        self._last_status: str | None = None
        self.ready_sent = False
        self.stopping_sent = False

    def changed(self) -> None:
        self._changed.set()

    async def run(self) -> None:
        while True:
            self._changed.clear()
            standing = self._standing()
            if standing.may_serve and not self.ready_sent and not self.stopping_sent:
                self.ready_sent = True
                self._last_status = standing.status
                sdnotify.notify("READY=1", f"STATUS={standing.status}")
                logger.info("ready to serve, %.3f s after the process started", process_age())
            elif standing.status != self._last_status:
                self._last_status = standing.status
                sdnotify.notify(f"STATUS={standing.status}")
            await self._changed.wait()

    def stopping(self, status: str) -> None:
        """`STOPPING=1` (once): the service has begun to stop."""
        if self.stopping_sent:
            return
        self.stopping_sent = True
        sdnotify.notify("STOPPING=1", f"STATUS={status}")


@dataclass(frozen=True)
class Watchdog:
    """`WATCHDOG=1` every `interval` seconds while `run()` runs."""

    interval: float

    async def run(self) -> None:
        while True:
            sdnotify.notify("WATCHDOG=1")
            await asyncio.sleep(self.interval)


def systemd_watchdog() -> Watchdog | None:
    """The watchdog systemd asks for ($WATCHDOG_USEC), or None when it asks for none."""
    interval = sdnotify.watchdog_interval()
    return None if interval is None else Watchdog(interval)


def process_age() -> float:
    """Seconds since this process started (from /proc, to the clock tick)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")
    return uptime - ticks / os.sysconf("SC_CLK_TCK")
