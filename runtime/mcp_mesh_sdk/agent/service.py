"""The agent as one object: its parts, its start-up and shutdown, and what the endpoints report.

`Agent.performance_stats()` and `Agent.system_health()` are the spec's shapes; add jobs such
as an incident detector with `Agent.add_periodic_task()` before the agent starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from mcp_mesh_sdk import __version__
from mcp_mesh_sdk.agent.lifecycle import BackgroundTasks, Lifecycle, PeriodicTask
from mcp_mesh_sdk.agent.mcp_engine import McpEngine
from mcp_mesh_sdk.agent.metrics import AgentMetrics
from mcp_mesh_sdk.agent.monitoring import (
    Alert,
    AlertManager,
    PerformanceAlerting,
    PerformanceHealth,
    PerformanceMonitor,
    SystemSampler,
    performance_problems,
    system_issues,
)
from mcp_mesh_sdk.agent.operations import OperationRunner
from mcp_mesh_sdk.agent.ops_metrics import newest_backup_time
from mcp_mesh_sdk.agent.paths import AGENT_OWN_PREFIX, Outcome, PathGuard
from mcp_mesh_sdk.agent.registry_client import RegistryClient
from mcp_mesh_sdk.agent.security import SecurityMonitor
from mcp_mesh_sdk.agent.temporaries import reap_temporaries
from mcp_mesh_sdk.agent.tools import TOOL_NAMES, FileTools
from mcp_mesh_sdk.certificate_expiry import certificate_expiry
from mcp_mesh_sdk.config import AgentConfig

logger = logging.getLogger("mcp_mesh_sdk.agent")

SYSTEM_SAMPLE_SECONDS = 5.0
FILE_CHECK_SECONDS = 1.0
PERFORMANCE_CHECK_SECONDS = 1.0  # /health reuses the window's verdict this long


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.version = __version__
        self.metrics = AgentMetrics(config.agent_name, __version__)
        for tool in TOOL_NAMES:  # every series exists from the start: rate() sees the first one
            for outcome in Outcome:
                self.metrics.operations.labels(operation=tool, outcome=outcome.value)
        self.security = SecurityMonitor(
            window_minutes=config.security_window,
            max_events_per_source=config.security_threshold,
            trusted_proxies=config.trusted_proxies,
        )
        self.security.event_listeners.append(self._count_security_event)
        self.performance = PerformanceMonitor()
        self.alerts = AlertManager()
        self.alerts.handlers.append(self._count_alert)
        self.alerting = PerformanceAlerting(self.alerts)
        self.system = SystemSampler(config.base_directory)
        cert_file = config.tls.cert_file
        self._certificate = None if cert_file is None else certificate_expiry(cert_file)
        guard = None
        if config.base_directory is not None:
            guard = PathGuard(
                config.base_directory, config.allowed_extensions, config.max_file_size
            )
        self.tools = FileTools(guard)
        self.runner = OperationRunner(
            security=self.security,
            performance=self.performance,
            alerting=self.alerting,
            metrics=self.metrics,
            max_concurrent=config.max_concurrent_ops,
            timeout=float(config.request_timeout),
            test_delay=config.test_tool_delay,
        )
        self.registry = RegistryClient(
            config,
            version=__version__,
            capabilities=TOOL_NAMES,
            on_change=self._registry_changed,
            on_failure=lambda call: self.metrics.registry_failures.labels(call=call).inc(),
        )
        self.lifecycle = Lifecycle(
            fallback_mode=config.fallback_mode,
            registry_problem=self.registry.status.problem,
            critical_errors=self.file_operation_errors,
        )
        self.engine: McpEngine | None = None
        self.exit_code = 0
        self.request_exit: Callable[[int], None] = lambda code: None
        self._tasks = BackgroundTasks()
        self._engine_done = asyncio.Event()
        self._engine_settled = asyncio.Event()  # loaded, or failed to load
        self._engine_task: asyncio.Task[None] | None = None
        self._registry_task: asyncio.Task[None] | None = None
        self._reaper_task: asyncio.Task[None] | None = None
        self._deregistered = False
        self._file_check: tuple[float, list[str]] = (-FILE_CHECK_SECONDS, [])
        self._performance_check: tuple[float, PerformanceHealth | None] = (
            -PERFORMANCE_CHECK_SECONDS,
            None,
        )

    # -- wiring hooks ----------------------------------------------------------------------------
    def add_periodic_task(
        self, name: str, interval: float, run: Callable[[], Awaitable[None] | None]
    ) -> None:
        """Run `run` every `interval` seconds while the agent serves (e.g. incident checks)."""
        self._tasks.periodic.append(PeriodicTask(name, interval, run))

    # -- start and stop --------------------------------------------------------------------------
    async def startup(self) -> None:
        self._tasks.periodic.append(
            PeriodicTask("system-sample", SYSTEM_SAMPLE_SECONDS, self._sample_system,
                         run_at_start=True)
        )  # fmt: skip
        self._tasks.start()
        self._reaper_task = asyncio.create_task(
            asyncio.to_thread(self.reap_temporaries), name="reap-temporaries"
        )
        self._registry_task = asyncio.create_task(self.registry.run(), name="registry")
        self._engine_task = asyncio.create_task(self._serve_engine(), name="mcp-engine")

    def reap_temporaries(self) -> None:
        """Remove the temporary files of writes a previous run left (see `temporaries`)."""
        base = self.config.base_directory
        if base is None:
            return
        try:
            reaped = reap_temporaries(base, written_before=self.lifecycle.started_at)
        except OSError as exc:
            logger.warning("leftover temporary files not looked for in %s: %s", base,
                           exc.strerror or exc)  # fmt: skip
            return
        bounded = "" if reaped.complete else " (stopped at the walk's bound: more at next start)"
        logger.info("removed %d temporary file(s) left by interrupted writes in %s%s",
                    reaped.removed, base, bounded)  # fmt: skip

    async def _serve_engine(self) -> None:
        from mcp_mesh_sdk.agent.mcp_engine import build_engine_patiently

        await self.lifecycle.wait_listening()  # importing the SDK must not delay the listener
        try:
            engine = await asyncio.to_thread(
                build_engine_patiently, self.config, self.tools, self.runner
            )
        except Exception:
            logger.critical("the MCP engine could not be built; stopping", exc_info=True)
            self._engine_settled.set()
            self.request_exit(1)
            return
        async with engine.session_manager.run():
            self.engine = engine
            self.lifecycle.engine_loaded = True
            self._engine_settled.set()
            self.lifecycle.changed()
            await self._engine_done.wait()

    async def wait_for_engine(self) -> McpEngine | None:
        """The MCP engine once loaded (None if it failed, or took over REQUEST_TIMEOUT)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.request_timeout):
                await self._engine_settled.wait()
        return self.engine

    async def leave_registry(self) -> None:
        """Deregister once (the drain calls this early; shutdown makes sure it happened)."""
        if self._deregistered:
            return
        self._deregistered = True
        if self._registry_task is not None:  # no heartbeat or retry may register it again
            self._registry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._registry_task
        await self.registry.deregister(timeout=min(3.0, float(self.config.request_timeout)))

    async def shutdown(self) -> None:
        self.lifecycle.begin_drain()
        await self.leave_registry()
        self._engine_done.set()
        if self._engine_task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._engine_task, timeout=5)
        await self._tasks.stop()
        self.runner.close()
        logger.info("agent stopped")

    # -- what the endpoints report ---------------------------------------------------------------
    def file_operation_errors(self, probe: bool = False) -> list[str]:
        """Why the file tools cannot work right now (empty when they can, or are off).

        Without `probe` (the load balancer's probes) the answer is reused for up to
        FILE_CHECK_SECONDS; with it a file is really written and removed.
        """
        now = time.monotonic()
        if not probe and now - self._file_check[0] < FILE_CHECK_SECONDS:
            return self._file_check[1]
        errors = self._check_files(probe)
        self._file_check = (now, errors)
        return errors

    def _check_files(self, probe: bool) -> list[str]:
        base = self.config.base_directory
        if base is None:
            return []
        if not base.is_dir():
            return [f"BASE_DIRECTORY {base} does not exist or is not a directory"]
        if not os.access(base, os.R_OK | os.W_OK | os.X_OK):
            return [f"BASE_DIRECTORY {base} is not readable and writable by this process"]
        if probe:
            try:
                with tempfile.NamedTemporaryFile(dir=base, prefix=f"{AGENT_OWN_PREFIX}probe-"):
                    pass
            except OSError as exc:
                return [f"BASE_DIRECTORY {base}: cannot write a file: {exc.strerror}"]
        return []

    def health(self) -> tuple[int, dict[str, Any]]:
        """/health: 503 only when the file operations cannot work; the body says `degraded`
        too while the registry is lost or a performance threshold is crossed (see
        `detailed_health`), without changing the status code."""
        errors = self.file_operation_errors()
        status = "unhealthy" if errors else self._degraded_or_healthy()
        body = {
            "status": status,
            "version": self.version,
            "uptime_seconds": round(self.lifecycle.uptime_seconds, 3),
            "timestamp": datetime.now(UTC).isoformat(),
            "state": self.lifecycle.phase,
        }
        return (503 if errors else 200), body

    def _degraded_or_healthy(self) -> str:
        registry = self.registry.status
        if not registry.registered or registry.last_error is not None:
            return "degraded"
        if self.performance_health().reasons:
            return "degraded"
        return "healthy"

    def performance_health(self, fresh: bool = False) -> PerformanceHealth:
        """The seed's alert thresholds over the recent window (`performance_problems`:
        server-error rate > 5 %, average > 1000 ms, p95 > 2000 ms, over the last 60 s with at
        least 10 calls of an operation). Reused for PERFORMANCE_CHECK_SECONDS unless `fresh`."""
        now = time.monotonic()
        checked_at, known = self._performance_check
        if known is None or fresh or now - checked_at >= PERFORMANCE_CHECK_SECONDS:
            known = performance_problems(self.performance)
            self._performance_check = (now, known)
        return known

    def readiness(self) -> tuple[int, dict[str, object]]:
        """/ready, the load balancer's check: "this process can serve" (started, registered
        or in fallback, not draining, base directory usable).

        Performance is deliberately not part of it. Slow calls or server errors usually come
        from load or a shared dependency, and then every agent crosses the thresholds at the
        same moment: if /ready followed them, the load balancer would take the whole fleet out
        at once and turn a slow service into no service, and an agent taken out gets no calls,
        so its window never shows it recovered. Performance shows in /health/detailed
        (`degraded`, with the reasons), in the alerts and in the incidents instead.
        """
        readiness = self.lifecycle.readiness()
        return (200 if readiness.ready else 503), readiness.describe()

    def detailed_health(self) -> tuple[int, dict[str, Any]]:
        """/health/detailed: `unhealthy` (503) when the file operations cannot work;
        `degraded` (200) while the MCP engine is not loaded, the registry is lost, a system
        limit is crossed, or a seed alert threshold is crossed over the recent window
        (server-error rate > 5 %, average latency > 1000 ms, p95 > 2000 ms over the last
        60 s, judged only for an operation with at least 10 calls in it: an old burst ages
        out after a minute). Each reason is in `errors`; `checks.performance` has the figures.
        """
        file_errors = self.file_operation_errors(probe=True)
        base = self.config.base_directory
        system = self.system.snapshot()
        issues = system_issues(system)
        performance = self.performance_health(fresh=True)
        registry = self.registry.status.describe()
        registry.update(url=self.config.mesh_registry_url, fallback_mode=self.config.fallback_mode)
        errors = [*file_errors, *issues, *performance.reasons]
        if registry["error"]:
            errors.append(f"registry: {registry['error']}")
        if file_errors:
            status = "unhealthy"
        elif (
            issues
            or performance.reasons
            or not self.lifecycle.engine_loaded
            or registry["error"]
            or (not registry["registered"])
        ):
            status = "degraded"
        else:
            status = "healthy"
        checks = {
            "file_operations": {
                "status": "disabled" if base is None else ("fail" if file_errors else "ok"),
                "base_directory": str(base) if base else None,
                "readable": base is not None and not file_errors,
                "writable": base is not None and not file_errors,
                "errors": file_errors,
            },
            "registry": registry,
            "system": {**system.as_dict(), "issues": issues},
            "performance": performance.describe(),
            "mcp": {"loaded": self.lifecycle.engine_loaded, "transport": "streamable-http",
                    "stateless": True},
            "security": self.security.health(),
            "readiness": self.lifecycle.readiness().describe(),
        }  # fmt: skip
        body = {
            "status": status,
            "timestamp": datetime.now(UTC).isoformat(),
            "version": self.version,
            "uptime_seconds": round(self.lifecycle.uptime_seconds, 3),
            "checks": checks,
            "errors": errors,
            "metadata": {
                "agent_name": self.config.agent_name,
                "security_context": self.config.security_context,
                "advertise_host": self.config.advertise_host,
                "port": self.config.port,
                "pid": os.getpid(),
                "state": self.lifecycle.phase,
            },
        }
        return (503 if file_errors else 200), body

    def performance_stats(self) -> dict[str, dict[str, Any]]:
        """operation -> {count, error_rate, avg_duration_ms, p95_duration_ms, ...} (spec), over
        the last 100 calls; `error_rate` (= `server_error_rate`) counts server errors only,
        `client_error_count` / `client_error_rate` the callers' mistakes and refusals."""
        return self.performance.all_stats()

    def system_health(self) -> dict[str, Any]:
        """The last system sample: memory_percent, disk_usage_percent, cpu_percent, ..."""
        snapshot = self.system.snapshot()
        return {**snapshot.as_dict(), "issues": system_issues(snapshot)}

    def metrics_text(self) -> bytes:
        self._refresh_gauges()
        return self.metrics.render_text()

    def metrics_json(self) -> dict[str, Any]:
        self._refresh_gauges()
        samples = {
            f"operation_duration_seconds{{operation={operation}}}": [
                {"value": seconds, "timestamp": when, "labels": {"operation": operation}}
                for when, seconds, _ in self.performance.recent_samples(operation)
            ]
            for operation in self.performance.operations()
        }
        return self.metrics.render_json(
            extra={
                "histograms": samples,
                "operations": self.performance_stats(),
                "system": self.system_health(),
                "alerts": [alert.describe() for alert in list(self.alerts.history)[-20:]],
            }
        )

    # -- internals -------------------------------------------------------------------------------
    def _refresh_gauges(self) -> None:
        self.metrics.ready.set(1 if self.lifecycle.readiness().ready else 0)
        self.metrics.draining.set(1 if self.lifecycle.draining else 0)
        self.metrics.registered.set(1 if self.registry.status.registered else 0)
        self.metrics.blocked_sources.set(self.security.blocked_count())
        self.metrics.backup_last_success.set(newest_backup_time(self.config.backup_dir) or 0)
        expiry = None if self._certificate is None else self._certificate.read()
        self.metrics.tls_certificate_expiry.set(expiry or 0)

    def _sample_system(self) -> None:
        snapshot = self.system.sample()
        for figure in ("cpu_percent", "memory_percent", "disk_usage_percent", "process_rss_mb"):
            self.metrics.system.labels(figure=figure).set(getattr(snapshot, figure))

    def _registry_changed(self) -> None:
        self.metrics.registered.set(1 if self.registry.status.registered else 0)
        self.lifecycle.changed()

    def _count_security_event(self, event: Any) -> None:
        self.metrics.security_events.labels(event_type=event.event_type.value).inc()

    def _count_alert(self, alert: Alert) -> None:
        operation = str(alert.metadata.get("operation", ""))
        self.metrics.alerts.labels(
            alert=alert.name, severity=alert.severity.value, operation=operation
        ).inc()
