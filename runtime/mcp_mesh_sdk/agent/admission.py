"""Admission of /mcp requests: a budget of request-body bytes held at once.

A POST's body is read whole and then copied while the SDK parses it and the tool runs (about
3x its size at the peak), so 60 concurrent 10 MB writes took 1.5 GB. Before its body is read,
each POST reserves its declared `Content-Length` (a body without one: the whole body limit)
from MCP_MESH_MAX_BUFFERED_BYTES, and gives it back when its answer is sent. A request that
does not fit waits up to ADMISSION_WAIT seconds for room, then gets a 503 `busy` with
`Retry-After`: never an unbounded queue. A body larger than the whole budget runs alone.
When the last large body in flight is done, the free memory goes back to the system
(`serving.memory`).

The budget holds bodies; MAX_CONCURRENT_OPS bounds the file operations (`operations`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_mesh_sdk.serving import memory
from mcp_mesh_sdk.serving.middleware import header
from mcp_mesh_sdk.serving.ratelimit import RateLimitFilter

ADMISSION_WAIT = 2.0  # seconds a request may wait for room in the budget
DISCARD_SECONDS = 5.0  # seconds a refused request's body is read (and dropped) at most
TRIM_AFTER_BYTES = 1024 * 1024  # a body this large returns the process's free memory when done
SETTLE_SECONDS = (1.0, 4.0)  # after these, the garbage of the last bodies is collected, trimmed

logger = logging.getLogger("mcp_mesh_sdk.agent.admission")
logger.addFilter(RateLimitFilter())


class ByteBudget:
    """`capacity` bytes shared by the requests in flight."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0
        self._waiting = 0
        self._changed = asyncio.Condition()

    async def acquire(self, amount: int, wait: float) -> int | None:
        """Reserve `amount` (at most the capacity) within `wait` seconds; the amount held,
        to `release` later, or None when there was no room in time."""
        amount = min(amount, self.capacity)
        if self._waiting == 0 and self.held + amount <= self.capacity:
            self.held += amount  # the usual case: room at once, no lock, no timer
            return amount
        self._waiting += 1
        try:
            return await self._wait_for_room(amount, wait)
        finally:
            self._waiting -= 1

    async def _wait_for_room(self, amount: int, wait: float) -> int | None:
        async with self._changed:
            try:
                async with asyncio.timeout(wait):
                    await self._changed.wait_for(lambda: self.held + amount <= self.capacity)
            except TimeoutError:
                return None
            self.held += amount
            return amount

    async def release(self, amount: int) -> None:
        self.held -= amount
        if self._waiting:
            async with self._changed:
                self._changed.notify_all()


def declared_length(scope: Scope) -> int | None:
    """The request's Content-Length, or None when absent or not a number."""
    value = header(scope, b"content-length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


class BodyAdmission:
    """Runs `app` for a POST only once its body fits in the budget; other methods pass."""

    def __init__(self, budget_bytes: int, body_limit: int, wait: float = ADMISSION_WAIT) -> None:
        self.budget = ByteBudget(budget_bytes)
        self.body_limit = body_limit
        self.wait = wait
        self.refused = 0
        self._settling: asyncio.TimerHandle | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        if scope["method"] != "POST":
            await app(scope, receive, send)
            return
        length = declared_length(scope)
        wanted = self.body_limit if length is None else min(length, self.body_limit)
        held = await self.budget.acquire(wanted, self.wait)
        if held is None:
            self.refused += 1
            logger.warning(
                "busy: request bodies already hold %d of %d bytes (MCP_MESH_MAX_BUFFERED_BYTES); "
                "refusing a request of %d bytes",
                self.budget.held, self.budget.capacity, wanted,
            )  # fmt: skip
            await discard_body(receive, DISCARD_SECONDS)  # else the client sees a reset
            await busy(self.budget.capacity)(scope, receive, send)
            return
        try:
            await app(scope, receive, send)
        finally:
            await self.budget.release(held)
            if held >= TRIM_AFTER_BYTES and self.budget.held == 0:
                memory.trim()  # the last large body is done: give its pages back
                self._settle_later()

    def _settle_later(self) -> None:
        """Collect and trim again 1 s and 4 s later (once, however many bodies end): copies
        of the last bodies held in reference cycles are freed only by the garbage collector,
        after the trim above. 60 concurrent 10 MB writes still held 107 MB ten seconds later
        without this in one CI run; with it, under 100 MB in every run, 84 MB in most."""
        if self._settling is None:
            self._settling = asyncio.get_running_loop().call_later(SETTLE_SECONDS[0], self._settle)

    def _settle(self, round_: int = 0) -> None:
        self._settling = None
        if self.budget.held:
            return  # a body is in flight: its own end settles again
        gc.collect()
        memory.trim()
        if round_ + 1 < len(SETTLE_SECONDS):
            delay = SETTLE_SECONDS[round_ + 1] - SETTLE_SECONDS[round_]
            loop = asyncio.get_running_loop()
            self._settling = loop.call_later(delay, self._settle, round_ + 1)


async def discard_body(receive: Receive, seconds: float) -> None:
    """Read the request body and drop each chunk as it comes (for at most `seconds`), so
    that the answer reaches a client still sending: closing on unread data resets it."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return


def busy(capacity: int) -> JSONResponse:
    reason = (
        f"the agent is busy: request bodies in progress fill its budget of {capacity} bytes "
        "(MCP_MESH_MAX_BUFFERED_BYTES); retry shortly"
    )
    return JSONResponse(
        {"error": "busy", "reason": reason},
        status_code=503,
        headers={"Retry-After": "1", "Connection": "close"},
    )
