"""Runs one file operation with everything around it: the concurrency limit, the timeout,
security events, Prometheus metrics, performance statistics and alerts.

Every call ends in one outcome class (`paths.Outcome`), the `outcome` label of
`mcp_mesh_agent_operations_total`: `ok`, `client_error` (refused by policy, not found, bad
arguments, too large, wrong extension, not a directory, not UTF-8) or `server_error` (an
unexpected exception, an I/O error on the agent's own base directory, a timeout). The finer
kind is the `error_type` label of `mcp_mesh_agent_operation_errors_total` (refused, not_found,
not_a_directory, is_a_directory, not_a_file, not_text, bad_path, bad_arguments, cancelled;
io_error, permission_denied, no_space, timeout, internal, busy: MAX_CONCURRENT_OPS reached).

Every call is one line of the audit log (logger `mcp_mesh_sdk.agent.audit`, INFO; the file
MCP_MESH_AUDIT_LOG when set, see `logs.setup_audit_log`): the operation, its path and outcome,
and the `client` that made it (`agent.clients`).

A client error is not a performance error: the agent did its job. Refusals are security
events (the SecurityMonitor counts them per source and blocks); only server errors count in
the error rate the alerts, the incident detector and /health/detailed look at.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from mcp_mesh_sdk.agent.metrics import AgentMetrics
from mcp_mesh_sdk.agent.monitoring import PerformanceAlerting, PerformanceMonitor
from mcp_mesh_sdk.agent.paths import Outcome, Refusal, ServerError, ToolCallError, is_suspicious
from mcp_mesh_sdk.agent.security import SecurityEventType, SecurityMonitor
from mcp_mesh_sdk.logs import AUDIT_LOGGER, client_var, operation_var

T = TypeVar("T")

# Set by the HTTP layer for each request; tool calls read it to attribute security events.
client_address_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "client_address", default="unknown"
)

logger = logging.getLogger("mcp_mesh_sdk.agent.operations")
audit = logging.getLogger(AUDIT_LOGGER)


class Busy(ServerError):
    """MAX_CONCURRENT_OPS operations are running already: the call is refused at once (a
    clear `busy` tool error the caller can retry) rather than queued behind them."""

    default_detail = "busy"


class InThread(Generic[T]):
    """What work run inline returns to have `rest` (the whole operation again, so nothing
    open is handed over) run in a worker thread instead: e.g. a read of a large file."""

    __slots__ = ("rest",)

    def __init__(self, rest: Callable[[], T]) -> None:
        self.rest = rest


class OperationRunner:
    def __init__(
        self,
        *,
        security: SecurityMonitor,
        performance: PerformanceMonitor,
        alerting: PerformanceAlerting,
        metrics: AgentMetrics,
        max_concurrent: int,
        timeout: float,
        test_delay: float = 0.0,
    ) -> None:
        self.security = security
        self.performance = performance
        self.alerting = alerting
        self.metrics = metrics
        self.timeout = timeout
        self.test_delay = test_delay
        self._max_concurrent = max_concurrent
        self._running = 0
        self._executor: ThreadPoolExecutor | None = None
        self._series: dict[tuple[str, Outcome], tuple[Any, Any]] = {}
        self._in_progress: dict[str, Any] = {}

    async def run(
        self,
        operation: str,
        path: str,
        work: Callable[[], T | InThread[T]],
        *,
        inline: bool = False,
    ) -> T:
        """Run blocking `work` in a worker thread; with `inline`, on the event loop (quick
        work only: a few system calls on the base directory, no fsync), where it may hand
        the operation on to a worker thread by returning `InThread(rest)`.

        A `ToolCallError` from `work` (Refusal, ClientError, ServerError) passes through and
        is counted in its class; a timeout or any other exception becomes a ServerError.
        """
        source = client_address_var.get()
        client = client_var.get() or "anonymous"
        operation_token = operation_var.set(operation)
        in_progress = self._in_progress.get(operation)
        if in_progress is None:
            in_progress = self.metrics.operations_in_progress.labels(operation=operation)
            self._in_progress[operation] = in_progress
        in_progress.inc()
        started = time.perf_counter()
        outcome, detail = Outcome.OK, ""
        try:
            if is_suspicious(path):
                self.security.record(
                    SecurityEventType.SUSPICIOUS_FILE_ACCESS,
                    source,
                    path,
                    {"operation": operation},
                    user_id=client,
                )
            return await self._run_limited(work, inline)
        except ToolCallError as failure:
            outcome, detail = failure.outcome, failure.detail
            if isinstance(failure, Refusal) and failure.event is not None:
                self.security.record(
                    failure.event,
                    source,
                    path,
                    {"operation": operation, "reason": str(failure)},
                    user_id=client,
                )
            if outcome is Outcome.SERVER_ERROR:
                logger.error("%s on %r failed: %s", operation, path, failure,
                             extra={"fields": {"error_type": detail}})  # fmt: skip
            raise
        except TimeoutError as exc:
            outcome, detail = Outcome.SERVER_ERROR, "timeout"
            logger.error("%s on %r timed out after %g s", operation, path, self.timeout)
            raise ServerError(f"{operation} timed out after {self.timeout:g} s", "timeout") from exc
        except asyncio.CancelledError:
            # The caller went away (or the agent is stopping) before the answer: not a
            # failure of the file operation.
            outcome, detail = Outcome.CLIENT_ERROR, "cancelled"
            raise
        except Exception as exc:
            outcome, detail = Outcome.SERVER_ERROR, "internal"
            logger.exception("%s on %r failed unexpectedly", operation, path)
            raise ServerError(
                f"{operation} failed: internal error ({type(exc).__name__})", "internal"
            ) from exc
        finally:
            in_progress.dec()
            self._account(operation, time.perf_counter() - started, outcome, detail, path)
            operation_var.reset(operation_token)

    def record_rejected(self, operation: str, seconds: float, detail: str) -> None:
        """Count a call of `operation` that never reached it, e.g. arguments the MCP layer
        rejected (`bad_arguments`): a client error."""
        self._account(operation, seconds, Outcome.CLIENT_ERROR, detail, None)

    async def _run_limited(self, work: Callable[[], T | InThread[T]], inline: bool) -> T:
        if self._running >= self._max_concurrent:
            raise Busy(
                f"busy: {self._max_concurrent} file operations are running already "
                "(MAX_CONCURRENT_OPS); retry shortly"
            )
        if inline and not self.test_delay:
            # No thread hop (for a small read it cost more CPU than the read, the GIL handed
            # back and forth), and no timer: nothing can time out before it returns.
            done = work()
            if not isinstance(done, InThread):
                return done
            work = done.rest
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=min(32, self._max_concurrent), thread_name_prefix="file-op"
            )
        loop = asyncio.get_running_loop()
        self._running += 1
        try:
            async with asyncio.timeout(self.timeout):
                if self.test_delay:
                    await asyncio.sleep(self.test_delay)
                context = contextvars.copy_context()
                done = await loop.run_in_executor(self._executor, context.run, work)
                if isinstance(done, InThread):  # handed on: run the rest in the thread too
                    done = await loop.run_in_executor(self._executor, context.run, done.rest)
                return done  # type: ignore[return-value]
        finally:
            self._running -= 1

    def _account(
        self, operation: str, seconds: float, outcome: Outcome, detail: str, path: str | None
    ) -> None:
        counted = self._series.get((operation, outcome))
        if counted is None:
            counted = self._series[(operation, outcome)] = self._series_of(operation, outcome)
        total, latency = counted
        total.inc()
        latency.observe(seconds)
        if outcome is not Outcome.OK:
            self.metrics.operation_errors.labels(operation=operation, error_type=detail).inc()
        self.performance.record(operation, seconds, outcome=outcome)
        self.alerting.check_monitor(operation, self.performance)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s in %.1f ms",
                operation,
                outcome.value,
                seconds * 1000,
                extra={"fields": {"outcome": outcome.value, "error_type": detail or None,
                                  "duration_ms": seconds * 1000}},
            )  # fmt: skip
        if audit.isEnabledFor(logging.INFO):
            client = client_var.get() or "anonymous"
            audit.info(
                "%s %s by %s in %.1f ms",
                operation,
                outcome.value,
                client,
                seconds * 1000,
                extra={"fields": {"client": client, "path": path, "outcome": outcome.value,
                                  "error_type": detail or None, "duration_ms": seconds * 1000}},
            )  # fmt: skip

    def _series_of(self, operation: str, outcome: Outcome) -> tuple[Any, Any]:
        """The labelled children of `operations_total` and of the latency histogram (made
        once per operation and outcome: `labels()` takes a lock and builds a key each time)."""
        metrics = self.metrics
        return (
            metrics.operations.labels(operation=operation, outcome=outcome.value),
            metrics.operation_latency.labels(operation=operation),
        )

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
