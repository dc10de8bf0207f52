"""The agent benchmark's reading of wrk output and its summary table."""

import os

import pytest

from bench.agent import (
    CONNECTIONS,
    LIMITS_LOADS,
    LIMITS_OUT_OF_REACH,
    arm_order,
    compare_arms,
    cpu_seconds,
    limits_command,
    limits_env,
    limits_table,
    parse_wrk,
    throughput_table,
)

WRK_OUTPUT = """Running 3s test @ http://127.0.0.1:41234/health
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    10.62ms    1.20ms  19.80ms   90.00%
    Req/Sec     2.35k   150.00     2.60k    70.00%
  Latency Distribution
     50%  635.00us
     75%   10.90ms
     90%   11.40ms
     99%    1.20s
  14058 requests in 3.00s, 2.10MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   4686.16
Transfer/sec:    716.00KB
"""


def test_wrk_figures_are_read_in_milliseconds_whatever_unit_wrk_chose() -> None:
    figures = parse_wrk(WRK_OUTPUT)
    assert figures == {
        "rps": 4686.16,
        "p50_ms": 0.635,
        "p99_ms": 1200.0,
        "non_2xx": 3.0,
        "socket_errors": 0.0,
    }


def test_average_latency_and_thread_stats_are_not_taken_for_percentiles() -> None:
    without_distribution = WRK_OUTPUT.split("  Latency Distribution")[0] + "Requests/sec: 1.0\n"
    with pytest.raises(RuntimeError, match="could not read wrk's output"):
        parse_wrk(without_distribution)


def test_table_has_a_row_per_endpoint_and_connection_count() -> None:
    def level(rps: float) -> dict[str, float]:
        return {"rps_median": rps, "p50_ms_median": 1.0, "p99_ms_median": 2.0}

    health = {
        str(c): {"agent": level(100 * c), "bare_uvicorn": level(200 * c)} for c in CONNECTIONS
    }
    mcp = {str(c): level(10 * c) for c in CONNECTIONS}
    table = throughput_table(health, mcp)
    assert len(table["rows"]) == 3 * len(CONNECTIONS)
    assert ["agent MCP read_file", 50, 500, 1.0, 2.0] in table["rows"]
    assert ["bare uvicorn /health", 10, 2000, 1.0, 2.0] in table["rows"]


def test_limit_arms_alternate_which_goes_first() -> None:
    assert arm_order(4) == [("on", "off"), ("off", "on"), ("on", "off"), ("off", "on")]


def test_only_the_off_arm_puts_the_limits_out_of_reach() -> None:
    env = {"MCP_MESH_PORT": "1", "MAX_CONCURRENT_OPS": "100"}
    assert limits_env(env, "on") == env
    off = limits_env(env, "off")
    assert off["MCP_MESH_PORT"] == "1"
    assert off["MAX_CONCURRENT_OPS"] == LIMITS_OUT_OF_REACH["MAX_CONCURRENT_OPS"] != "100"
    assert int(off["MCP_MESH_MAX_CONNECTIONS"]) >= 10 * max(CONNECTIONS)


def run(rps: float, cpu_us: float = 100.0) -> dict[str, float]:
    return {"rps": rps, "p50_ms": 1.0, "p99_ms": 2.0, "non_2xx": 0.0, "socket_errors": 0.0,
            "cpu_us_per_request": cpu_us}  # fmt: skip


def test_the_ratio_is_of_medians_and_must_stay_within_five_percent() -> None:
    slower = compare_arms({"on": [run(90), run(940), run(950)], "off": [run(1000)] * 3})
    assert slower["rps_ratio"] == 0.94 and slower["met"] is False  # the outlier 90 is ignored
    close = compare_arms({"on": [run(960, 105)] * 3, "off": [run(1000, 100)] * 3})
    assert close["rps_ratio"] == 0.96 and close["met"] is True
    assert close["cpu_per_request_ratio"] == 1.05


def test_cpu_seconds_are_read_after_the_command_name_whatever_it_holds() -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    stat = f"4242 (py (x) y) S 1 2 3 4 5 6 7 8 9 10 {3 * ticks} {ticks} 0 0 20 0 3"
    assert cpu_seconds(stat) == 4.0


def test_limits_table_has_a_row_per_load() -> None:
    compared = {load: compare_arms({"on": [run(95)], "off": [run(100)]}) for load in LIMITS_LOADS}
    table = limits_table(compared)
    assert table["rows"] == [
        ["health", 50, 95, 100, 0.95, 1.0],
        ["mcp_read_file", 10, 95, 100, 0.95, 1.0],
    ]


def test_the_off_arm_bypasses_the_guard_and_the_body_budget() -> None:
    on, off = limits_command("on"), limits_command("off")
    assert on[-2:] == ["-m", "mcp_mesh_sdk.server"]
    launcher = off[-1]
    assert "GuardedH11Protocol.bound_to" in launcher and "BodyAdmission.__call__" in launcher
    compile(launcher, "launcher", "exec")  # it is Python that runs
