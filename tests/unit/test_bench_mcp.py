"""The MCP bench's arithmetic: interleaving, ratios and the profile's layers."""

from __future__ import annotations

import bench.mcp as mcp


def run(rps: float, cpu: float) -> dict[str, float]:
    return {"rps": rps, "p50_ms": 1.0, "p99_ms": 2.0, "non_2xx": 0.0, "socket_errors": 0.0,
            "cpu_us_per_request": cpu}  # fmt: skip


def test_arms_alternate_which_goes_first() -> None:
    assert mcp.round_orders(["agent", "bare"], 3) == [
        ["agent", "bare"],
        ["bare", "agent"],
        ["agent", "bare"],
    ]


def test_the_ratio_is_of_medians_against_the_target() -> None:
    compared = mcp.compare(
        {
            "agent": [run(900, 1100), run(100, 5000), run(950, 1000)],
            "bare": [run(1000, 1000), run(1000, 1000), run(2000, 900)],
        }
    )
    assert compared["rps_ratio"] == 0.9 and compared["met"] is True
    assert compared["cpu_per_request_ratio"] == 1.1
    compared = mcp.compare({"agent": [run(899, 1)], "bare": [run(1000, 1)]})
    assert compared["met"] is False


def test_profile_entries_are_told_apart_by_layer() -> None:
    venv = "/x/.venv/lib/python3.11/site-packages"
    assert mcp.layer_of("/repo/runtime/mcp_mesh_sdk/agent/paths.py", "locate") == (
        "the agent (mcp_mesh_sdk)"
    )
    assert mcp.layer_of(f"{venv}/mcp/server/streamable_http.py", "x") == "SDK: mcp"
    assert mcp.layer_of(f"{venv}/mcp_types/methods.py", "x") == "SDK: mcp_types"
    assert mcp.layer_of("~", "<method 'poll' of 'select.epoll' objects>") == (
        "waiting in epoll (idle)"
    )
    assert mcp.layer_of("/usr/lib/python3.11/logging/__init__.py", "info") == (
        "logging (the agent: its audit line)"
    )


def test_the_bare_server_has_the_agents_tool_mode_and_uvicorn_settings() -> None:
    for setting in (
        "json_response=True",
        "stateless_http=True",
        'http="h11"',
        'lifespan="on"',
        "access_log=False",
        "proxy_headers=True",
        "timeout_keep_alive=5",
        "backlog=2048",
        "def read_file(path: str) -> str",
    ):
        assert setting in mcp.BARE_MCP_APP  # fmt: skip


def test_the_tables_carry_the_load_and_the_baseline_when_it_ran() -> None:
    level = {"rps_ratio": 0.95, "cpu_per_request_ratio": 1.02,
             "agent": {"rps_median": 950.0, "p50_ms_median": 1.0},
             "bare_sdk": {"rps_median": 1000.0, "p50_ms_median": 0.9}}  # fmt: skip
    result = {
        "machine": {"cpus": 2, "load_average_at_start": [1.5, 1.2, 1.0],
                    "load_average_at_end": [2.5, 1.4, 1.1]},
        "connections": {"1": level, "10": level, "50": level},
    }  # fmt: skip
    only = mcp.tables(result)
    assert len(only) == 1 and "[1.5, 1.2, 1.0] at the start" in only[0]["title"]
    assert [row[3] for row in only[0]["rows"]] == [0.95, 0.95, 0.95]
    before = {"baseline_rps_ratio_to_bare": 0.6, "agent_rps_ratio_to_bare": 0.95,
              "baseline_cpu_per_request_ratio_to_bare": 1.5}  # fmt: skip
    result["baseline"] = {"what": "the last release", "1": before, "10": before, "50": before}
    both = mcp.tables(result)
    assert both[1]["rows"][0] == [1, 0.6, 0.95, 1.5, 1.02]
    assert "the last release" in both[1]["title"]
