"""The agent benchmark's reading of wrk output and its summary table."""

import pytest

from bench.agent import CONNECTIONS, parse_wrk, throughput_table

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
