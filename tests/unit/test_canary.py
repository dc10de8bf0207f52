"""Canary analysis: parsing, the snapshot/delta model, p95, the verdict rules and the loop.

Agents are fakes that expose real Prometheus text made by prometheus_client with the
contract's metric families; the clock is fake, so no test waits for a window.
"""

from __future__ import annotations

import argparse
import http.server
import itertools
import json
import math
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from mcp_mesh_sdk import canary
from mcp_mesh_sdk.canary import (
    ScrapeError,
    Settings,
    Snapshot,
    Thresholds,
    Window,
    analyse,
    check,
    delta,
    histogram_quantile,
    metrics_url,
    outcome,
    parse_metrics,
    verdict,
    window_of,
)
from mcp_mesh_sdk.commands.release_analyse import configure_analyse, run_analyse
from mcp_mesh_sdk.errors import ConfigError, OpsError
from tests.httpserving import serving

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
INF = math.inf
_starts = itertools.count(1_700_000_000)


class FakeAgent:
    """An agent's /metrics with the contract's families, on a private registry."""

    def __init__(self, version: str = "1.1.0", name: str = "agent") -> None:
        self.version = version
        self.name = name
        self.down = False
        self.restart()

    def restart(self) -> None:
        self.registry = reg = CollectorRegistry()
        self.operations = Counter(
            "mcp_mesh_agent_operations", "Tool operations run", ["operation", "outcome"],
            registry=reg,
        )  # fmt: skip
        self.latency = Histogram(
            "mcp_mesh_agent_operation_duration_seconds", "Tool operation latency",
            ["operation"], buckets=BUCKETS, registry=reg,
        )  # fmt: skip
        info = Gauge("mcp_mesh_agent_info", "Agent build", ["version", "agent_name"], registry=reg)
        info.labels(version=self.version, agent_name=self.name).set(1)
        started = Gauge("mcp_mesh_agent_start_time_seconds", "start", registry=reg)
        started.set(next(_starts))
        Counter("mcp_mesh_agent_http_requests", "other", ["route"], registry=reg).labels("/").inc()

    def serve(
        self, calls: int, outcome: str = "ok", seconds: float = 0.005, op: str = "read_file"
    ) -> None:
        for _ in range(calls):
            self.operations.labels(operation=op, outcome=outcome).inc()
            self.latency.labels(operation=op).observe(seconds)

    def text(self) -> str:
        if self.down:
            raise ScrapeError(f"{self.name} did not answer: connection refused")
        return generate_latest(self.registry).decode()


class Lab:
    """Fake agents behind URLs, a fake clock, and traffic served as the clock moves."""

    def __init__(self, traffic: Callable[[float, float], None] | None = None) -> None:
        self.agents: dict[str, FakeAgent] = {}
        self.now = 1000.0
        self.start = self.now
        self.slept = 0.0
        self.scrapes: list[str] = []
        self.traffic = traffic or (lambda t0, t1: None)

    def add(self, url: str, agent: FakeAgent) -> str:
        self.agents[url] = agent
        return url

    def fetch(self, url: str, timeout: float) -> str:
        self.scrapes.append(url)
        if url not in self.agents:
            raise ScrapeError(f"{url} did not answer: no route to host")
        return self.agents[url].text()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        before = self.now
        self.now += seconds
        self.slept += seconds
        self.traffic(before - self.start, self.now - self.start)

    def run(self, settings: Settings) -> dict[str, Any]:
        return analyse(
            settings, fetch=self.fetch, clock=self.clock, wall=self.clock, sleep=self.sleep
        )


def per_second(rate: float, t0: float, t1: float) -> int:
    """Calls served between t0 and t1 at a steady rate (whole calls)."""
    return math.floor(rate * t1 + 1e-9) - math.floor(rate * t0 + 1e-9)


def window(
    ok: int = 0, client: int = 0, server: int = 0, seconds: float | list[float] = 0.005
) -> Window:
    """A window's figures as an agent scraped before and after those calls would give."""
    agent = FakeAgent()
    before = parse_metrics(agent.text())
    durations = seconds if isinstance(seconds, list) else [seconds] * (ok + client + server)
    outcomes = ["ok"] * ok + ["client_error"] * client + ["server_error"] * server
    for outcome_, spent in zip(outcomes, durations, strict=True):
        agent.serve(1, outcome_, spent)
    return delta(before, parse_metrics(agent.text()))


# ----------------------------------------------------------------------------- parsing


def test_generated_exposition_sums_every_operation() -> None:
    agent = FakeAgent(version="1.2.0", name="agent-3")
    agent.serve(7, "ok", 0.004, op="read_file")
    agent.serve(2, "client_error", 0.002, op="write_file")
    agent.serve(3, "server_error", 0.3, op="write_file")
    snapshot = parse_metrics(agent.text())
    assert (snapshot.ok, snapshot.client_errors, snapshot.server_errors) == (7, 2, 3)
    assert (snapshot.version, snapshot.agent_name) == ("1.2.0", "agent-3")
    assert snapshot.duration_count == 12
    assert snapshot.duration_sum == pytest.approx(7 * 0.004 + 2 * 0.002 + 3 * 0.3)
    buckets = dict(snapshot.buckets)
    assert len(buckets) == len(BUCKETS) + 1
    assert buckets[0.0025] == 2 and buckets[0.005] == 9 and buckets[0.25] == 9
    assert buckets[0.5] == 12 and buckets[INF] == 12
    assert snapshot.started is not None


SAMPLE = """\
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 1.57
# HELP mcp_mesh_agent_info Agent build and identity (value 1)
# TYPE mcp_mesh_agent_info gauge
mcp_mesh_agent_info{agent_name="agent-1",version="1.1.0"} 1.0
# HELP mcp_mesh_agent_operations_total Tool operations run
# TYPE mcp_mesh_agent_operations_total counter
mcp_mesh_agent_operations_total{operation="read_file",outcome="ok"} 40.0
mcp_mesh_agent_operations_total{operation="read_file",outcome="client_error"} 3.0
mcp_mesh_agent_operations_total{operation="list_files",outcome="ok"} 5.0
mcp_mesh_agent_operations_total{operation="list_files",outcome="server_error"} 2.0
mcp_mesh_agent_operations_total{operation="list_files",outcome="cancelled"} 9.0
# HELP mcp_mesh_agent_operation_duration_seconds Tool operation latency
# TYPE mcp_mesh_agent_operation_duration_seconds histogram
{read_buckets}
mcp_mesh_agent_operation_duration_seconds_count{{operation="read_file"}} 43.0
mcp_mesh_agent_operation_duration_seconds_sum{{operation="read_file"}} 0.215
{list_buckets}
mcp_mesh_agent_operation_duration_seconds_count{{operation="list_files"}} 7.0
mcp_mesh_agent_operation_duration_seconds_sum{{operation="list_files"}} 1.05
"""


def _bucket_lines(operation: str, counts: list[int]) -> str:
    bounds = [*(f"{b:g}" if b >= 1 else repr(float(b)) for b in BUCKETS), "+Inf"]
    return "\n".join(
        f'mcp_mesh_agent_operation_duration_seconds_bucket{{le="{le}",operation="{operation}"}} '
        f"{count}.0"
        for le, count in zip(bounds, counts, strict=True)
    )


def test_hand_written_sample_is_parsed() -> None:
    read = [0, 10, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43, 43]
    listing = [0, 0, 0, 0, 0, 0, 0, 5, 7, 7, 7, 7, 7, 7, 7]
    text = SAMPLE.replace("{{", "{").replace("}}", "}")
    text = text.replace("{read_buckets}", _bucket_lines("read_file", read))
    text = text.replace("{list_buckets}", _bucket_lines("list_files", listing))
    snapshot = parse_metrics(text)
    assert (snapshot.ok, snapshot.client_errors, snapshot.server_errors) == (45, 3, 2)
    assert snapshot.version == "1.1.0"
    assert dict(snapshot.buckets)[0.005] == 43 and dict(snapshot.buckets)[0.25] == 48
    assert snapshot.duration_count == 50 and snapshot.duration_sum == pytest.approx(1.265)
    assert snapshot.started is None  # no start time series in this sample
    figures = window_of(snapshot)
    assert figures.calls == 50  # `cancelled` is not an outcome of the contract
    assert figures.avg_ms == pytest.approx(25.3)


def test_text_that_is_not_an_agents_metrics_is_refused() -> None:
    with pytest.raises(ScrapeError, match="no mcp_mesh_agent_info"):
        parse_metrics("# TYPE up gauge\nup 1\n")
    with pytest.raises(ScrapeError, match="unreadable"):
        parse_metrics("mcp_mesh_agent_info{version=1.1.0 1\n")


# ------------------------------------------------------------------- deltas and quantiles


def test_window_is_the_increase_between_two_scrapes() -> None:
    agent = FakeAgent()
    agent.serve(100, "ok", 0.004)
    first = parse_metrics(agent.text())
    agent.serve(8, "ok", 0.004)
    agent.serve(2, "server_error", 0.2)
    seen = delta(first, parse_metrics(agent.text()))
    assert (seen.calls, seen.ok, seen.server_errors, seen.restarts) == (10, 8, 2, 0)
    assert seen.server_error_ratio == pytest.approx(0.2)
    assert dict(seen.buckets)[0.005] == 8 and dict(seen.buckets)[INF] == 10
    assert seen.avg_ms == pytest.approx((8 * 4 + 2 * 200) / 10)


def test_a_restarted_agent_counts_since_its_restart_never_negative() -> None:
    agent = FakeAgent()
    agent.serve(500, "ok")
    before = parse_metrics(agent.text())
    agent.restart()
    agent.serve(6, "ok")
    agent.serve(1, "server_error")
    seen = delta(before, parse_metrics(agent.text()))
    assert (seen.ok, seen.server_errors, seen.restarts) == (6, 1, 1)
    assert all(count >= 0 for _, count in seen.buckets)


def test_a_restart_is_seen_by_the_counters_going_down_without_a_start_time() -> None:
    before = Snapshot(ok=50, buckets=((0.005, 50), (INF, 50)), duration_count=50)
    after = Snapshot(ok=3, buckets=((0.005, 3), (INF, 3)), duration_count=3)
    seen = delta(before, after)
    assert (seen.ok, seen.timed_calls, seen.restarts) == (3, 3, 1)


def test_a_restart_with_more_calls_than_before_is_seen_by_the_start_time() -> None:
    before = Snapshot(ok=5, started=100.0)
    after = Snapshot(ok=9, started=160.0)
    assert delta(before, after).ok == 9


def test_p95_interpolates_linearly_inside_the_bucket() -> None:
    buckets = [(0.1, 50.0), (0.5, 90.0), (1.0, 100.0), (INF, 100.0)]
    # rank 95 is the 5th of the 10 observations in (0.5, 1]: 0.5 + 0.5 * 5/10
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.75)
    # in the first bucket the lower bound is 0
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.05)
    # a rank in +Inf answers the highest finite bound, like Prometheus
    assert histogram_quantile(0.95, [(0.1, 1.0), (1.0, 2.0), (INF, 100.0)]) == 1.0
    assert histogram_quantile(0.95, [(0.1, 0.0), (INF, 0.0)]) is None
    assert histogram_quantile(0.95, [(INF, 3.0)]) is None
    assert histogram_quantile(0.95, [(0.1, 3.0), (1.0, 3.0)]) is None  # no +Inf bucket


def test_p95_of_a_window_matches_prometheus() -> None:
    seen = window(ok=20, seconds=[0.004] * 19 + [0.3])
    # rank 19 of 20: 19 calls are <= 5 ms, all in (2.5 ms, 5 ms]: 2.5 + 2.5 * 19/19
    assert seen.p95_ms == pytest.approx(5.0)
    assert window(ok=10, seconds=0.7).p95_ms == pytest.approx(500 + 500 * 0.95)


def test_baseline_windows_add_up_bucket_by_bucket() -> None:
    total = window(ok=10, seconds=0.004) + window(ok=10, server=5, seconds=0.04)
    assert (total.calls, total.server_errors, total.timed_calls) == (25, 5, 25)
    assert dict(total.buckets)[0.005] == 10 and dict(total.buckets)[0.05] == 25


# ------------------------------------------------------------------------------ verdict

DEFAULTS = Thresholds()


def test_server_errors_above_the_threshold_fail_without_a_baseline() -> None:
    failed = check(window(ok=45, server=5), None, DEFAULTS)
    assert failed is not None and failed.metric == "server_error_ratio"
    assert failed.message == (
        "server-error ratio 10.0% on the canary (5 of 50 calls) against no baseline; threshold 5.0%"
    )


def test_too_few_server_errors_or_a_low_ratio_pass() -> None:
    assert check(window(ok=4, server=4), None, DEFAULTS) is None  # 50 % but only 4 errors
    assert check(window(ok=195, server=5), None, DEFAULTS) is None  # 5 errors, 2.5 %
    assert check(window(ok=95, server=5), None, DEFAULTS) is None  # exactly 5 % is not above


def test_client_errors_are_calls_never_failures() -> None:
    seen = window(ok=10, client=40, server=3)
    assert check(seen, None, DEFAULTS) is None
    assert seen.calls == 53
    assert check(window(ok=5, client=90, server=5), None, DEFAULTS) is None  # 5 % of 100
    assert check(window(client=50, server=5), None, DEFAULTS) is not None  # 9.1 %


def test_a_canary_as_bad_as_its_baseline_passes_the_baseline_check() -> None:
    canary_ = window(ok=90, server=10)  # 10 %
    assert check(canary_, window(ok=180, server=20), DEFAULTS) is None  # baseline 10 %
    assert check(canary_, window(ok=190, server=10), DEFAULTS) is None  # 10 % <= 2 x 5 %


def test_a_canary_worse_than_its_baseline_fails() -> None:
    failed = check(window(ok=75, server=25), window(ok=180, server=20), DEFAULTS)
    assert failed is not None and failed.metric == "server_error_ratio"
    assert failed.message == (
        "server-error ratio 25.0% on the canary (25 of 100 calls) against 10.0% on the "
        "baseline (20 of 200 calls); threshold 5.0% and 2x the baseline's"
    )
    healthy = check(window(ok=13, server=12), window(ok=51), DEFAULTS)
    assert healthy is not None
    assert healthy.message.startswith(
        "server-error ratio 48.0% on the canary (12 of 25 calls) against 0.0% on the "
        "baseline (0 of 51 calls)"
    )


def test_a_baseline_with_too_few_calls_is_not_compared() -> None:
    failed = check(window(ok=45, server=5), window(ok=2, server=2), DEFAULTS)
    assert failed is not None
    assert "too little baseline traffic to compare (4 calls)" in failed.message


def test_half_a_second_added_to_every_call_fails_against_the_baseline() -> None:
    slow = window(ok=40, seconds=0.505)
    fast = window(ok=200, seconds=0.005)
    assert 500 <= (slow.p95_ms or 0) <= 1000
    assert check(slow, None, DEFAULTS) is None  # under the seed's absolute thresholds
    failed = check(slow, fast, DEFAULTS)
    assert failed is not None and failed.metric == "p95_latency"
    assert failed.message.startswith("p95 latency 975.0 ms on the canary (40 calls) against 4.9")
    assert "2x the baseline's and more than 100 ms above it" in failed.message


def test_latency_noise_passes() -> None:
    assert check(window(ok=40, seconds=0.009), window(ok=200, seconds=0.005), DEFAULTS) is None
    assert check(window(ok=40, seconds=0.08), window(ok=200, seconds=0.005), DEFAULTS) is None


def test_the_seeds_absolute_latency_thresholds() -> None:
    failed = check(window(ok=20, seconds=3.0), window(ok=20, seconds=3.0), DEFAULTS)
    assert failed is not None and failed.metric == "p95_latency"
    assert "threshold 2000 ms" in failed.message
    # p95 under 2 s, but 3 calls of 25 s bring the average over 1 s
    mixed = window(ok=100, seconds=[0.9] * 97 + [25.0] * 3)
    assert (mixed.p95_ms or 0) < 2000 and (mixed.avg_ms or 0) > 1000
    failed = check(mixed, None, DEFAULTS)
    assert failed is not None and failed.metric == "avg_latency"
    assert failed.message.startswith("average latency 1623.0 ms on the canary (100 calls)")


def test_latency_is_not_judged_on_fewer_than_five_calls() -> None:
    assert check(window(ok=4, seconds=20.0), None, DEFAULTS) is None
    assert check(window(ok=5, seconds=20.0), None, DEFAULTS) is not None


def test_end_of_window_verdicts_and_the_inconclusive_policy() -> None:
    few = verdict(window(ok=9), None, DEFAULTS, seconds=10.0)
    assert few.verdict == "inconclusive" and few.metric is None
    assert "only 9 calls on the canary in 10.0 s, fewer than the 10" in few.message
    assert outcome(few, "pass") == "pass" and outcome(few, "fail") == "fail"
    enough = verdict(window(ok=10), window(ok=30), DEFAULTS, seconds=10.0)
    assert enough.verdict == "pass" and outcome(enough, "fail") == "pass"
    bad = verdict(window(ok=5, server=5), None, DEFAULTS, seconds=10.0)
    assert bad.verdict == "fail" and outcome(bad, "pass") == "fail"


# ------------------------------------------------------------------------------ analysis

CANARY = "http://10.0.0.5:8080/metrics"
OLD = ("http://10.0.0.6:8080/metrics", "http://10.0.0.7:8080/metrics")


def fleet(traffic: Callable[[Lab, float, float], None]) -> Lab:
    lab = Lab()
    lab.add(CANARY, FakeAgent("1.2.0", "agent-5"))
    for index, url in enumerate(OLD):
        lab.add(url, FakeAgent("1.1.0", f"agent-{6 + index}"))
        lab.agents[url].serve(1000)  # what they served before the window
    lab.traffic = lambda t0, t1: traffic(lab, t0, t1)
    return lab


def steady(lab: Lab, t0: float, t1: float, canary_seconds: float = 0.005) -> None:
    lab.agents[CANARY].serve(per_second(10, t0, t1), "ok", canary_seconds)
    for url in OLD:
        lab.agents[url].serve(per_second(10, t0, t1), "ok", 0.005)


def test_a_healthy_canary_passes_after_the_whole_window() -> None:
    lab = fleet(steady)
    result = lab.run(Settings(CANARY, OLD, baseline_version="1.1.0"))
    assert (result["verdict"], result["outcome"], result["metric"]) == ("pass", "pass", None)
    assert result["early_abort"] is False and result["decided_by_policy"] is False
    assert result["seconds"] == pytest.approx(10.0) and result["window_seconds"] == 10.0
    assert result["canary"]["calls"] == 100 and result["canary"]["version"] == "1.2.0"
    assert result["baseline"]["calls"] == 200  # the 1000 each served before do not count
    assert result["baseline"]["urls"] == list(OLD)
    assert result["baseline"]["versions"] == ["1.1.0", "1.1.0"]
    assert result["skipped_baselines"] == []
    assert result["thresholds"]["error_rate"] == 0.05
    assert result["finished_at"] - result["started_at"] == pytest.approx(10.0)
    assert lab.scrapes.count(CANARY) == 11  # the start, then every second
    json.dumps(result)


def test_server_errors_abort_the_analysis_early() -> None:
    def failing(lab: Lab, t0: float, t1: float) -> None:
        steady(lab, t0, t1)
        if t1 > 3:
            lab.agents[CANARY].serve(per_second(3, max(t0, 3), t1), "server_error")

    lab = fleet(failing)
    result = lab.run(Settings(CANARY, OLD, window=10.0))
    assert (result["verdict"], result["outcome"]) == ("fail", "fail")
    assert result["metric"] == "server_error_ratio" and result["early_abort"] is True
    assert result["seconds"] == pytest.approx(5.0)  # 6 errors by t=5: 5 or more, 10.7 %
    assert lab.slept == pytest.approx(5.0)
    assert result["canary"]["server_errors"] == 6
    assert result["message"] == (
        "server-error ratio 10.7% on the canary (6 of 56 calls) against 0.0% on the baseline "
        "(0 of 100 calls); threshold 5.0% and 2x the baseline's"
    )


def test_a_latency_regression_aborts_and_noise_does_not() -> None:
    lab = fleet(lambda lab, t0, t1: steady(lab, t0, t1, canary_seconds=0.505))
    result = lab.run(Settings(CANARY, OLD, baseline_version="1.1.0"))
    assert (result["outcome"], result["metric"], result["early_abort"]) == (
        "fail", "p95_latency", True,
    )  # fmt: skip
    assert result["seconds"] == pytest.approx(1.0)  # 10 calls after one second
    noisy = fleet(lambda lab, t0, t1: steady(lab, t0, t1, canary_seconds=0.009))
    assert noisy.run(Settings(CANARY, OLD, baseline_version="1.1.0"))["outcome"] == "pass"


@pytest.mark.parametrize("policy", ["pass", "fail"])
def test_too_few_calls_is_inconclusive_and_the_policy_decides(policy: str) -> None:
    lab = fleet(lambda lab, t0, t1: lab.agents[CANARY].serve(per_second(0.5, t0, t1)))
    result = lab.run(Settings(CANARY, OLD, inconclusive=policy))  # type: ignore[arg-type]
    assert result["verdict"] == "inconclusive" and result["outcome"] == policy
    assert result["decided_by_policy"] is True and result["inconclusive_policy"] == policy
    assert result["canary"]["calls"] == 5
    assert result["message"].endswith(
        f"fewer than the 10 needed to judge it; {policy}ed by the inconclusive policy"
    )
    assert result["seconds"] == pytest.approx(10.0) and result["early_abort"] is False


def test_thin_traffic_is_watched_on_until_the_canary_has_enough_calls() -> None:
    lab = fleet(lambda lab, t0, t1: lab.agents[CANARY].serve(per_second(0.5, t0, t1)))
    result = lab.run(Settings(CANARY, OLD, window=10.0, max_window=30.0))
    assert (result["verdict"], result["outcome"]) == ("pass", "pass")
    assert result["canary"]["calls"] == 10 and result["seconds"] == pytest.approx(20.0)
    assert result["window_seconds"] == 10.0 and result["max_window_seconds"] == 30.0
    assert result["early_abort"] is False and result["decided_by_policy"] is False


def test_thin_traffic_stays_inconclusive_at_the_longest_window() -> None:
    lab = fleet(lambda lab, t0, t1: lab.agents[CANARY].serve(per_second(0.2, t0, t1)))
    result = lab.run(Settings(CANARY, OLD, window=10.0, max_window=30.0, inconclusive="fail"))
    assert (result["verdict"], result["outcome"]) == ("inconclusive", "fail")
    assert result["canary"]["calls"] == 6 and result["seconds"] == pytest.approx(30.0)
    assert "only 6 calls on the canary in 30.0 s" in result["message"]


def test_errors_seen_while_watching_on_fail_the_release() -> None:
    def late_errors(lab: Lab, t0: float, t1: float) -> None:
        lab.agents[CANARY].serve(per_second(0.5, t0, t1), "server_error")
        for url in OLD:
            lab.agents[url].serve(per_second(10, t0, t1))

    lab = fleet(late_errors)
    result = lab.run(Settings(CANARY, OLD, window=5.0, max_window=30.0))
    assert (result["outcome"], result["metric"]) == ("fail", "server_error_ratio")
    assert result["seconds"] == pytest.approx(10.0)  # the fifth error, after the window
    assert result["early_abort"] is False


def test_enough_calls_end_the_analysis_at_the_window_not_the_longest_one() -> None:
    lab = fleet(steady)
    result = lab.run(Settings(CANARY, OLD, window=10.0, max_window=60.0))
    assert result["outcome"] == "pass" and result["seconds"] == pytest.approx(10.0)


def test_a_canary_that_stops_answering_fails_on_availability() -> None:
    def dying(lab: Lab, t0: float, t1: float) -> None:
        steady(lab, t0, t1)
        lab.agents[CANARY].down = t1 >= 4

    lab = fleet(dying)
    result = lab.run(Settings(CANARY, OLD))
    assert (result["outcome"], result["metric"], result["early_abort"]) == (
        "fail", "availability", True,
    )  # fmt: skip
    assert result["seconds"] == pytest.approx(4.0)
    assert result["message"].startswith("the canary stopped answering its metrics after 4.0 s")
    assert result["canary"]["calls"] == 30


def test_one_missed_scrape_of_the_canary_is_retried() -> None:
    lab = fleet(steady)
    fetch = lab.fetch
    misses = iter([True])

    def flaky(url: str, timeout: float) -> str:
        if url == CANARY and lab.now - lab.start >= 3 and next(misses, False):
            raise ScrapeError("timed out")
        return fetch(url, timeout)

    result = analyse(Settings(CANARY, OLD), fetch=flaky, clock=lab.clock, sleep=lab.sleep)
    assert result["outcome"] == "pass" and result["canary"]["calls"] == 100


def test_an_unreachable_canary_at_the_start_is_an_error() -> None:
    lab = fleet(steady)
    lab.agents[CANARY].down = True
    with pytest.raises(OpsError, match="the canary's metrics cannot be read"):
        lab.run(Settings(CANARY, OLD))


def test_a_canary_not_on_the_release_under_judgement_is_an_error() -> None:
    lab = fleet(steady)
    with pytest.raises(OpsError, match=r"runs 1\.2\.0, not 1\.3\.0"):
        lab.run(Settings(CANARY, OLD, baseline_version="1.1.0", canary_version="1.3.0"))


def test_a_restart_judges_the_canary_against_agents_of_its_own_version() -> None:
    lab = fleet(steady)
    for url in OLD:
        lab.agents[url].version = "1.2.0"
        lab.agents[url].restart()
    result = lab.run(Settings(CANARY, OLD, baseline_version="1.2.0", canary_version="1.2.0"))
    assert result["outcome"] == "pass"
    assert result["baseline"]["urls"] == list(OLD)


def test_baselines_on_another_version_or_unreachable_are_skipped() -> None:
    lab = fleet(steady)
    lab.agents[OLD[1]].version = "1.0.9"
    lab.agents[OLD[1]].restart()
    gone = "http://10.0.0.9:8080/metrics"
    result = lab.run(Settings(CANARY, (*OLD, gone), baseline_version="1.1.0"))
    assert result["baseline"]["urls"] == [OLD[0]] and result["baseline"]["calls"] == 100
    reasons = {item["url"]: item["reason"] for item in result["skipped_baselines"]}
    assert reasons[OLD[1]] == "runs version 1.0.9, not the baseline version 1.1.0"
    assert reasons[gone].startswith("unreachable: ")


def test_without_a_baseline_version_an_agent_on_the_canarys_version_is_skipped() -> None:
    lab = fleet(steady)
    upgraded = lab.add("http://10.0.0.8:8080/metrics", FakeAgent("1.2.0", "agent-8"))
    result = lab.run(Settings(CANARY, (*OLD, upgraded)))
    assert result["baseline"]["urls"] == list(OLD)
    assert result["skipped_baselines"] == [
        {"url": upgraded, "reason": "runs the canary's version 1.2.0"}
    ]


def test_no_baseline_gives_a_null_baseline() -> None:
    lab = fleet(steady)
    result = lab.run(Settings(CANARY))
    assert result["baseline"] is None and result["outcome"] == "pass"


def test_a_canary_restarting_mid_window_is_counted_from_its_restart() -> None:
    def restarting(lab: Lab, t0: float, t1: float) -> None:
        if t0 < 5 <= t1:
            lab.agents[CANARY].restart()
        steady(lab, t0, t1)

    lab = fleet(restarting)
    result = lab.run(Settings(CANARY, OLD))
    assert result["outcome"] == "pass" and result["canary"]["restarts"] == 1
    assert result["canary"]["calls"] == 100  # 40 before, 10 since the restart at 5, then 50


# ---------------------------------------------------------------------- scraping for real


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        status = 200 if self.path == "/metrics" else 404
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        if status == 200:
            self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def served_agent() -> Iterator[tuple[str, FakeAgent]]:
    agent = FakeAgent("1.1.0")
    agent.serve(12)

    class Handler(_Handler):
        def do_GET(self) -> None:
            type(self).body = agent.text().encode()
            super().do_GET()

    with serving(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}", agent


def test_metrics_are_fetched_over_http(served_agent: tuple[str, FakeAgent]) -> None:
    base, _ = served_agent
    snapshot = parse_metrics(canary.fetch_metrics(metrics_url(base), 2.0))
    assert snapshot.ok == 12
    with pytest.raises(ScrapeError, match="answered HTTP 404"):
        canary.fetch_metrics(f"{base}/nothing", 2.0)
    with pytest.raises(ScrapeError, match="did not answer"):
        canary.fetch_metrics("http://127.0.0.1:9/metrics", 2.0)
    with pytest.raises(ScrapeError, match="not an http"):
        canary.fetch_metrics("file:///etc/passwd", 2.0)


def test_an_answer_that_breaks_off_midway_is_a_scrape_error_not_a_traceback() -> None:
    import socket

    listener = socket.create_server(("127.0.0.1", 0))

    def answer_half() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(4096)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nmcp_mesh")

    thread = threading.Thread(target=answer_half, daemon=True)
    thread.start()
    try:
        with pytest.raises(ScrapeError, match="IncompleteRead"):
            canary.fetch_metrics(f"http://127.0.0.1:{listener.getsockname()[1]}/metrics", 2.0)
    finally:
        thread.join(timeout=5)
        listener.close()


def test_metrics_url() -> None:
    assert metrics_url("http://10.0.0.5:8080") == "http://10.0.0.5:8080/metrics"
    assert metrics_url("http://10.0.0.5:8080/") == "http://10.0.0.5:8080/metrics"
    assert metrics_url("https://agent/x/metrics") == "https://agent/x/metrics"
    for bad in ("10.0.0.5:8080", "ftp://host/metrics", "http://:80", "http://h:99999"):
        with pytest.raises(ValueError):
            metrics_url(bad)


# --------------------------------------------------------------------------------- command


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mcp-mesh-sdk release analyse")
    configure_analyse(parser)
    return parser.parse_args(argv)


def test_bad_options_are_a_config_error_listing_each() -> None:
    args = parse(
        "--baseline", "nope", "--window", "0", "--interval", "0.1", "--inconclusive", "maybe",
        "--error-rate", "x", "--min-calls", "2.5",
    )  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        run_analyse(args)
    text = str(caught.value)
    for option in ("--canary", "--baseline", "--window", "--interval", "--inconclusive"):
        assert f"  {option}: " in text
    assert "--error-rate: not a number: 'x'" in text
    assert "--min-calls: not an integer: '2.5'" in text
    with pytest.raises(ConfigError, match="must be 0 to 3600"):
        run_analyse(parse("--canary", "http://h:1", "--window", "3601"))
    with pytest.raises(ConfigError, match="--max-window: shorter than the window"):
        run_analyse(parse("--canary", "http://h:1", "--window", "10", "--max-window", "5"))
    with pytest.raises(ConfigError, match="is the canary"):
        run_analyse(parse("--canary", "http://h:1", "--baseline", "http://h:1/metrics"))


def _fake_fleet(monkeypatch: pytest.MonkeyPatch, server_errors: int) -> None:
    canary_agent, old = FakeAgent("1.2.0"), FakeAgent("1.1.0")
    scrapes = itertools.count()

    def fetch(url: str, timeout: float) -> str:
        agent = canary_agent if "10.0.0.5" in url else old
        if agent is canary_agent and next(scrapes):
            canary_agent.serve(6)
            canary_agent.serve(server_errors, "server_error")
            old.serve(6)
        return agent.text()

    monkeypatch.setattr(canary, "fetch_metrics", fetch)


def test_the_command_fails_with_the_message_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_fleet(monkeypatch, server_errors=6)
    args = parse(
        "--canary", "http://10.0.0.5:8080", "--baseline", "http://10.0.0.6:8080",
        "--window", "0.5", "--interval", "0.25", "--json", "--error-rate", "0.2",
    )  # fmt: skip
    assert run_analyse(args) == 1
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert document["outcome"] == "fail" and document["thresholds"]["error_rate"] == 0.2
    assert err == f"mcp-mesh-sdk release: analysis failed: {document['message']}\n"
    assert err.startswith("mcp-mesh-sdk release: analysis failed: server-error ratio 50.0%")


def test_the_command_passes_and_prints_a_summary(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_fleet(monkeypatch, server_errors=0)
    args = parse(
        "--canary", "http://10.0.0.5:8080", "--baseline", "http://10.0.0.6:8080",
        "--window", "0.5", "--interval", "0.25", "--min-calls", "5",
    )  # fmt: skip
    assert run_analyse(args) == 0
    out, err = capsys.readouterr()
    # the real clock runs the window here: a loaded machine may take longer than 0.5 s
    assert re.match(
        r"canary http://10\.0\.0\.5:8080/metrics \(1\.2\.0\): pass after [\d.]+ s: ", out
    )
    assert "baseline (1 agent(s)): " in out and err == ""
