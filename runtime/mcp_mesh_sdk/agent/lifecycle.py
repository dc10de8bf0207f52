"""Readiness, what systemd is told about it, and background tasks.

Ready means: the socket is bound, the agent is registered and its heartbeats get through (or
FALLBACK_MODE lets it serve without the registry), it is not draining, and its file
operations work. The MCP SDK may
still be loading then (it takes most of a second to import): /mcp calls wait for it rather
than fail, so it does not hold up readiness. systemd gets `READY=1` the first time all but
the last hold (a bad BASE_DIRECTORY shows in /ready and STATUS=, not as a start that never
ends) and `STATUS=` on every change; the server skeleton (`serving`) sends them, with
`WATCHDOG=1` from the serving loop and `STOPPING=1` when the drain begins.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mcp_mesh_sdk.serving.systemd import Standing, SystemdReporter

logger = logging.getLogger("mcp_mesh_sdk.agent.lifecycle")


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str | None = None  # starting, draining, not_registered, registry_unreachable, unhealthy
    errors: tuple[str, ...] = ()

    def describe(self) -> dict[str, object]:
        if self.ready:
            return {"status": "ready"}
        shown: dict[str, object] = {"status": "not_ready", "reason": self.reason}
        if self.errors:
            shown["errors"] = list(self.errors)
        return shown


@dataclass
class PeriodicTask:
    """`run` every `interval` seconds while the agent serves; failures are logged, not fatal."""

    name: str
    interval: float
    run: Callable[[], Awaitable[None] | None]
    run_at_start: bool = False


class Lifecycle:
    def __init__(
        self,
        *,
        fallback_mode: bool,
        registry_problem: Callable[[], str | None],
        critical_errors: Callable[[], list[str]],
    ) -> None:
        self.fallback_mode = fallback_mode
        self._registry_problem = registry_problem
        self._critical_errors = critical_errors
        self.started_at = time.time()
        self._started_monotonic = time.monotonic()
        self.listening = False
        self._listening = asyncio.Event()
        self.engine_loaded = False
        self.draining = False
        self.systemd = SystemdReporter(self._standing)

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self._started_monotonic

    @property
    def phase(self) -> str:
        if self.draining:
            return "draining"
        if not self.listening:
            return "starting"
        return "serving"

    def readiness(self) -> Readiness:
        if self.draining:
            return Readiness(False, "draining")
        if not self.listening:
            return Readiness(False, "starting")
        if not self.fallback_mode:
            problem = self._registry_problem()
            if problem is not None:
                return Readiness(False, problem)
        errors = self._critical_errors()
        if errors:
            return Readiness(False, "unhealthy", tuple(errors))
        return Readiness(True)

    def mark_listening(self) -> None:
        self.listening = True
        self._listening.set()
        self.changed()

    async def wait_listening(self) -> None:
        await self._listening.wait()

    def changed(self) -> None:
        """Something readiness depends on changed: re-evaluate what systemd is told."""
        self.systemd.changed()

    def begin_drain(self) -> None:
        if self.draining:
            return
        self.draining = True
        logger.info("draining: /ready answers 503 from now on")
        self.changed()

    def _standing(self) -> Standing:
        readiness = self.readiness()
        may_serve = readiness.ready or readiness.reason == "unhealthy"
        return Standing(may_serve and not self.draining, _status_line(readiness))


def _status_line(readiness: Readiness) -> str:
    if readiness.ready:
        return "ready"
    detail = f": {'; '.join(readiness.errors)}" if readiness.errors else ""
    return f"not ready ({readiness.reason}){detail}"


@dataclass
class BackgroundTasks:
    """The periodic jobs the agent runs while it serves (system samples, incident checks...)."""

    periodic: list[PeriodicTask] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        for task in self.periodic:
            self._tasks.append(asyncio.create_task(_repeat(task), name=task.name))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


async def _repeat(task: PeriodicTask) -> None:
    if not task.run_at_start:
        await asyncio.sleep(task.interval)
    while True:
        try:
            outcome = task.run()
            if inspect.isawaitable(outcome):
                await outcome
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception(
                "background task %s failed; it runs again in %g s", task.name, task.interval
            )
        await asyncio.sleep(task.interval)
