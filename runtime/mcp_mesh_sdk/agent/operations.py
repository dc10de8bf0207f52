"""Runs one file operation with everything around it: the concurrency limit, the timeout,
security events, Prometheus metrics, performance statistics and alerts.

A refused call (traversal, extension, size) is a security event, not a performance error: the
agent did its job. A failed call (missing file, not text, timeout, crash) is an error.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from mcp_mesh_sdk.agent.metrics import AgentMetrics
from mcp_mesh_sdk.agent.monitoring import PerformanceAlerting, PerformanceMonitor
from mcp_mesh_sdk.agent.paths import OperationFailed, Refusal, is_suspicious
from mcp_mesh_sdk.agent.security import SecurityEventType, SecurityMonitor
from mcp_mesh_sdk.logs import operation_var

T = TypeVar("T")

# Set by the HTTP layer for each request; tool calls read it to attribute security events.
client_address_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "client_address", default="unknown"
)

logger = logging.getLogger("mcp_mesh_sdk.agent.operations")


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
        self._slots: asyncio.Semaphore | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, operation: str, path: str, work: Callable[[], T]) -> T:
        """Run blocking `work` in a worker thread; Refusal/OperationFailed tell the caller why."""
        source = client_address_var.get()
        operation_token = operation_var.set(operation)
        in_progress = self.metrics.operations_in_progress.labels(operation=operation)
        in_progress.inc()
        started = time.perf_counter()
        outcome = "ok"
        try:
            if is_suspicious(path):
                self.security.record(
                    SecurityEventType.SUSPICIOUS_FILE_ACCESS, source, path, {"operation": operation}
                )
            return await self._run_limited(work)
        except Refusal as refusal:
            outcome = "refused"
            if refusal.event is not None:
                self.security.record(
                    refusal.event, source, path, {"operation": operation, "reason": str(refusal)}
                )
            raise
        except OperationFailed:
            outcome = "failed"
            raise
        except TimeoutError as exc:
            outcome = "timeout"
            raise OperationFailed(f"{operation} timed out after {self.timeout:g} s") from exc
        except Exception as exc:
            outcome = "error"
            logger.exception("%s on %r failed unexpectedly", operation, path)
            raise OperationFailed(
                f"{operation} failed: internal error ({type(exc).__name__})"
            ) from exc
        finally:
            in_progress.dec()
            self._account(operation, time.perf_counter() - started, outcome)
            operation_var.reset(operation_token)

    async def _run_limited(self, work: Callable[[], T]) -> T:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_concurrent)
            self._executor = ThreadPoolExecutor(
                max_workers=min(32, self._max_concurrent), thread_name_prefix="file-op"
            )
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout), self._slots:
            if self.test_delay:
                await asyncio.sleep(self.test_delay)
            context = contextvars.copy_context()
            return await loop.run_in_executor(self._executor, context.run, work)

    def _account(self, operation: str, seconds: float, outcome: str) -> None:
        metrics = self.metrics
        metrics.operations.labels(operation=operation, outcome=outcome).inc()
        metrics.operation_latency.labels(operation=operation).observe(seconds)
        if outcome != "ok":
            metrics.operation_errors.labels(operation=operation, error_type=outcome).inc()
        self.performance.record(operation, seconds, success=outcome in ("ok", "refused"))
        self.alerting.check(operation, self.performance.stats(operation))
        logger.debug(
            "%s %s in %.1f ms",
            operation,
            outcome,
            seconds * 1000,
            extra={"fields": {"outcome": outcome, "duration_ms": seconds * 1000}},
        )

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
