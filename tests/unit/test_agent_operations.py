"""One file operation with everything around it: limits, timeouts, events, metrics, alerts."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from mcp_mesh_sdk.agent.metrics import AgentMetrics
from mcp_mesh_sdk.agent.monitoring import AlertManager, PerformanceAlerting, PerformanceMonitor
from mcp_mesh_sdk.agent.operations import OperationRunner, client_address_var
from mcp_mesh_sdk.agent.paths import ClientError, Refusal, ServerError
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


def outcomes(runner: OperationRunner, operation: str) -> dict[str, float]:
    return {
        outcome: sample(runner, "mcp_mesh_agent_operations_total", operation=operation,
                        outcome=outcome)
        for outcome in ("ok", "client_error", "server_error")
    }  # fmt: skip


def run_many(runner: OperationRunner, calls) -> list[BaseException | object]:
    """Run (operation, path, work) calls one after the other on one runner; their results or
    exceptions."""

    async def main():
        client_address_var.set("10.0.0.1")
        results = []
        try:
            for operation, path, work in calls:
                try:
                    results.append(await runner.run(operation, path, work))
                except Exception as exc:
                    results.append(exc)
        finally:
            runner.close()
        return results

    return asyncio.run(main())


def test_success_is_counted_and_timed() -> None:
    runner = make_runner()
    assert run(runner, "read_file", "a.txt", lambda: "content") == "content"
    assert outcomes(runner, "read_file") == {"ok": 1, "client_error": 0, "server_error": 0}
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
    assert outcomes(runner, "read_file") == {"ok": 0, "client_error": 1, "server_error": 0}
    stats = runner.performance.stats("read_file")
    assert stats["error_rate"] == 0.0 and stats["client_error_count"] == 1


def test_a_missing_file_is_a_client_error_not_in_the_error_rate() -> None:
    runner = make_runner()

    def fail() -> None:
        raise ClientError("'a.txt' does not exist", "not_found")

    with pytest.raises(ClientError):
        run(runner, "read_file", "a.txt", fail)
    assert outcomes(runner, "read_file") == {"ok": 0, "client_error": 1, "server_error": 0}
    assert sample(runner, "mcp_mesh_agent_operation_errors_total", operation="read_file",
                  error_type="not_found") == 1  # fmt: skip
    stats = runner.performance.stats("read_file")
    assert stats["error_rate"] == 0.0 and stats["client_error_rate"] == 1.0
    assert runner.security.summary()["total_events"] == 0


def test_a_server_error_counts_against_the_error_rate() -> None:
    runner = make_runner()

    def fail() -> None:
        raise ServerError("'a.txt': Input/output error", "io_error")

    with pytest.raises(ServerError):
        run(runner, "read_file", "a.txt", fail)
    assert outcomes(runner, "read_file") == {"ok": 0, "client_error": 0, "server_error": 1}
    assert sample(runner, "mcp_mesh_agent_operation_errors_total", operation="read_file",
                  error_type="io_error") == 1  # fmt: skip
    stats = runner.performance.stats("read_file")
    assert stats["error_rate"] == 1.0 and stats["server_error_count"] == 1


def test_an_unexpected_crash_becomes_a_clean_failure() -> None:
    runner = make_runner()

    def crash() -> None:
        raise ZeroDivisionError

    with pytest.raises(ServerError, match="internal error"):
        run(runner, "file_info", "a.txt", crash)
    assert sample(runner, "mcp_mesh_agent_operation_errors_total", operation="file_info",
                  error_type="internal") == 1  # fmt: skip
    assert outcomes(runner, "file_info") == {"ok": 0, "client_error": 0, "server_error": 1}


def test_an_unclassified_os_error_is_a_server_error() -> None:
    runner = make_runner()

    def broken_disk() -> None:
        raise OSError(5, "Input/output error")

    with pytest.raises(ServerError):
        run(runner, "read_file", "a.txt", broken_disk)
    assert outcomes(runner, "read_file")["server_error"] == 1


def test_an_operation_over_the_timeout_is_a_server_error_with_a_clear_message() -> None:
    runner = make_runner(timeout=0.05)
    release = threading.Event()
    with pytest.raises(ServerError, match=r"timed out after 0\.05 s"):
        run(runner, "read_file", "slow.txt", lambda: release.wait(5))
    release.set()
    assert outcomes(runner, "read_file") == {"ok": 0, "client_error": 0, "server_error": 1}
    assert sample(runner, "mcp_mesh_agent_operation_errors_total", operation="read_file",
                  error_type="timeout") == 1  # fmt: skip
    assert sample(runner, "mcp_mesh_agent_operation_duration_seconds_count",
                  operation="read_file") == 1  # fmt: skip


def test_past_max_concurrent_operations_a_call_is_refused_as_busy_at_once() -> None:
    runner = make_runner(max_concurrent=2)
    running, peak = 0, 0
    lock = threading.Lock()

    def work() -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.2)
        with lock:
            running -= 1
        return "done"

    async def main() -> list[object]:
        started = time.monotonic()
        calls = [runner.run("list_directory", ".", work) for _ in range(6)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert time.monotonic() - started < 1.0  # refused at once, not queued
        return results

    results = asyncio.run(main())
    assert peak == 2
    assert results.count("done") == 2
    refusals = [r for r in results if isinstance(r, ServerError)]
    assert len(refusals) == 4
    assert str(refusals[0]).startswith("busy: 2 file operations are running already")
    assert sample(runner, "mcp_mesh_agent_operation_errors_total", operation="list_directory",
                  error_type="busy") == 4  # fmt: skip
    assert run(runner, "list_directory", ".", lambda: "later") == "later"  # slots come back


def test_suspicious_names_are_recorded() -> None:
    runner = make_runner()
    run(runner, "file_info", "config/.env", lambda: {})
    assert runner.security.summary()["events_by_type"] == {"suspicious_file_access": 1}


def test_repeated_server_errors_raise_one_critical_alert() -> None:
    runner = make_runner()
    raised = []
    runner.alerting.manager.handlers.append(raised.append)

    def fail() -> None:
        raise ServerError("'a.txt': No space left on device", "no_space")

    results = run_many(runner, [("write_file", "a.txt", fail)] * 20)
    assert all(isinstance(result, ServerError) for result in results)
    assert [(alert.name, alert.severity.value) for alert in raised] == [
        ("high_error_rate", "critical")
    ]


def test_a_surge_of_client_errors_raises_no_alert_but_refusals_are_security_events() -> None:
    runner = make_runner()
    raised = []
    runner.alerting.manager.handlers.append(raised.append)

    def missing() -> None:
        raise ClientError("'a.txt' does not exist", "not_found")

    def traversal() -> None:
        raise Refusal("refused: '..'", SecurityEventType.PATH_TRAVERSAL_ATTEMPT)

    calls = [("read_file", f"missing-{number}.txt", missing) for number in range(20)]
    calls += [("read_file", f"../x{number}.txt", traversal) for number in range(4)]
    results = run_many(runner, calls)
    assert [type(result) for result in results] == [ClientError] * 20 + [Refusal] * 4
    assert raised == []
    assert outcomes(runner, "read_file") == {"ok": 0, "client_error": 24, "server_error": 0}
    assert runner.performance.stats("read_file")["client_error_count"] == 24
    assert runner.security.summary()["events_by_type"] == {"path_traversal_attempt": 4}


def run_inline(runner: OperationRunner, operation: str, path: str, work):
    async def main():
        client_address_var.set("10.0.0.1")
        try:
            return await runner.run(operation, path, work, inline=True)
        finally:
            runner.close()

    return asyncio.run(main())


def test_inline_work_runs_on_the_event_loop_and_hands_the_rest_to_a_thread() -> None:
    from mcp_mesh_sdk.agent.operations import InThread

    runner = make_runner()
    assert run_inline(runner, "read_file", "a.txt", lambda: threading.current_thread().name) == (
        threading.main_thread().name
    )
    handed = run_inline(
        runner, "read_file", "big.txt", lambda: InThread(lambda: threading.current_thread().name)
    )
    assert handed.startswith("file-op")
    assert outcomes(runner, "read_file") == {"ok": 2, "client_error": 0, "server_error": 0}


def test_inline_failures_keep_their_outcome_class_and_security_event() -> None:
    runner = make_runner()

    def refused():
        raise Refusal("refused: '../x' contains '..'", SecurityEventType.PATH_TRAVERSAL_ATTEMPT)

    def missing():
        raise ClientError("'gone.txt' does not exist", "not_found")

    def broken():
        raise OSError(5, "Input/output error")

    for path, work in (("../x", refused), ("gone.txt", missing), ("bad.txt", broken)):
        with pytest.raises((Refusal, ClientError, ServerError)):
            run_inline(runner, "read_file", path, work)
    assert outcomes(runner, "read_file") == {"ok": 0, "client_error": 2, "server_error": 1}
    assert sample(runner, "mcp_mesh_agent_operation_errors_total", operation="read_file",
                  error_type="internal") == 1  # fmt: skip
    assert runner.security.summary()["events_by_type"] == {"path_traversal_attempt": 1}


def test_inline_work_waits_its_turn_behind_the_test_delay_in_a_thread() -> None:
    runner = make_runner(test_delay=0.01)
    name = run_inline(runner, "read_file", "a.txt", lambda: threading.current_thread().name)
    assert name.startswith("file-op")
