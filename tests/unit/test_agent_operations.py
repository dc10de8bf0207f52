"""One file operation with everything around it: limits, timeouts, events, metrics, alerts."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from mcp_mesh_sdk.agent.metrics import AgentMetrics
from mcp_mesh_sdk.agent.monitoring import AlertManager, PerformanceAlerting, PerformanceMonitor
from mcp_mesh_sdk.agent.operations import OperationRunner, client_address_var
from mcp_mesh_sdk.agent.paths import OperationFailed, Refusal
from mcp_mesh_sdk.agent.security import SecurityEventType, SecurityMonitor


def make_runner(**overrides) -> OperationRunner:
    metrics = AgentMetrics("unit-agent", "0.0.0")
    alerts = AlertManager()
    settings = {"max_concurrent": 4, "timeout": 5.0, **overrides}
    return OperationRunner(
        security=SecurityMonitor(),
        performance=PerformanceMonitor(),
        alerting=PerformanceAlerting(alerts, min_samples=5),
        metrics=metrics,
        **settings,
    )


def sample(runner: OperationRunner, name: str, **labels: str) -> float:
    value = runner.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def run(runner: OperationRunner, operation: str, path: str, work, source: str = "10.0.0.1"):
    async def main():
        client_address_var.set(source)
        try:
            return await runner.run(operation, path, work)
        finally:
            runner.close()

    return asyncio.run(main())


def test_success_is_counted_and_timed() -> None:
    runner = make_runner()
    assert run(runner, "read_file", "a.txt", lambda: "content") == "content"
    assert sample(runner, "mcp_mesh_agent_operations_total", operation="read_file",
                  outcome="ok") == 1  # fmt: skip
    assert sample(runner, "mcp_mesh_agent_operation_duration_seconds_count",
                  operation="read_file") == 1  # fmt: skip
    assert runner.performance.stats("read_file")["count"] == 1


def test_refusal_is_a_security_event_with_the_source_not_a_performance_error() -> None:
    runner = make_runner()

    def refuse() -> None:
        raise Refusal("refused: '..' in path", SecurityEventType.PATH_TRAVERSAL_ATTEMPT)

    with pytest.raises(Refusal):
        run(runner, "read_file", "../x.txt", refuse, source="10.9.9.9")
    assert runner.security.summary()["top_sources"] == {"10.9.9.9": 1}
    assert sample(runner, "mcp_mesh_agent_operation_errors_total", operation="read_file",
                  error_type="refused") == 1  # fmt: skip
    assert runner.performance.stats("read_file")["error_rate"] == 0.0


def test_failure_counts_against_the_error_rate() -> None:
    runner = make_runner()

    def fail() -> None:
        raise OperationFailed("'a.txt' does not exist")

    with pytest.raises(OperationFailed):
        run(runner, "read_file", "a.txt", fail)
    assert runner.performance.stats("read_file")["error_rate"] == 1.0


def test_an_unexpected_crash_becomes_a_clean_failure() -> None:
    runner = make_runner()

    def crash() -> None:
        raise ZeroDivisionError

    with pytest.raises(OperationFailed, match="internal error"):
        run(runner, "file_info", "a.txt", crash)
    assert sample(runner, "mcp_mesh_agent_operation_errors_total", operation="file_info",
                  error_type="error") == 1  # fmt: skip


def test_an_operation_over_the_timeout_fails_with_a_clear_message() -> None:
    runner = make_runner(timeout=0.05)
    release = threading.Event()
    with pytest.raises(OperationFailed, match=r"timed out after 0\.05 s"):
        run(runner, "read_file", "slow.txt", lambda: release.wait(5))
    release.set()


def test_no_more_than_max_concurrent_operations_run_at_once() -> None:
    runner = make_runner(max_concurrent=2)
    running, peak = 0, 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    async def main() -> None:
        await asyncio.gather(*(runner.run("list_directory", ".", work) for _ in range(6)))
        runner.close()

    asyncio.run(main())
    assert peak == 2


def test_suspicious_names_are_recorded() -> None:
    runner = make_runner()
    run(runner, "file_info", "config/.env", lambda: {})
    assert runner.security.summary()["events_by_type"] == {"suspicious_file_access": 1}


def test_repeated_failures_raise_one_critical_alert() -> None:
    runner = make_runner()
    raised = []
    runner.alerting.manager.handlers.append(raised.append)

    def fail() -> None:
        raise OperationFailed("nope")

    for _ in range(20):
        with pytest.raises(OperationFailed):
            run(runner, "write_file", "a.txt", fail)
    assert [alert.name for alert in raised] == ["high_error_rate"]
