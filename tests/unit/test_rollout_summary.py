"""The per-host rollout summary (`release summary`) from what the host cycle registered."""

from __future__ import annotations

import json
from typing import Any

from mcp_mesh_sdk.rollout_summary import render_table, summarise


def command(start: str, end: str, document: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "start": f"2026-11-29 {start}",
        "end": f"2026-11-29 {end}",
        "stdout": json.dumps(document) if document is not None else "",
    }


ANALYSIS = {
    "verdict": "pass",
    "outcome": "pass",
    "message": "no threshold crossed",
    "seconds": 10.02,
    "early_abort": False,
    "canary": {"calls": 40, "server_errors": 0, "server_error_ratio": 0.0, "p95_ms": 9.5,
               "avg_ms": 4.1},
    "baseline": {"calls": 210, "server_errors": 0, "server_error_ratio": 0.0, "p95_ms": 8.7,
                 "avg_ms": 3.9},
}  # fmt: skip


ACTIVATION = {
    "release": "1.0.1",
    "replaced": "/opt/mcp-mesh/releases/1.0.0",
    "seconds": {"restart": 0.8},
    "smoke": {"passed": True, "checks": ["initialize"], "seconds": 0.9},
}


def record(host: str = "agent1", **overrides: Any) -> dict[str, Any]:
    base = {
        "host": host,
        "verb": "upgrade",
        "drain": {"results": [command("10:00:00.000000", "10:00:00.500000")]},
        "activate": command("10:00:00.600000", "10:00:03.600000", ACTIVATION),
        "enable": {"results": [command("10:00:03.700000", "10:00:04.000000")]},
        "analysis": command("10:00:04.100000", "10:00:14.200000", ANALYSIS),
    }
    return base | overrides


def test_the_cycle_runs_from_the_drain_to_the_end_of_the_analysis() -> None:
    [host] = summarise([record()])["hosts"]
    assert host["cycle_seconds"] == 14.2
    assert host["smoke"]["passed"] is True
    assert host["analysis"]["canary"]["calls"] == 40
    assert host["analysis"]["baseline"]["p95_ms"] == 8.7


def test_without_analysis_the_cycle_ends_when_the_host_is_enabled() -> None:
    [host] = summarise([record(analysis={"skipped": True, "changed": False})])["hosts"]
    assert host["cycle_seconds"] == 4.0
    assert host["analysis"] is None


def test_a_registry_cycle_has_no_drain_smoke_or_analysis() -> None:
    registry = record("lb1", drain={}, enable={}, analysis={})
    registry["activate"]["stdout"] = json.dumps({"release": "1.0.1", "seconds": {}})
    [host] = summarise([registry])["hosts"]
    assert host["cycle_seconds"] == 3.0
    assert host["smoke"] is None and host["analysis"] is None


def test_unreadable_output_shows_as_unknown_instead_of_failing() -> None:
    broken = record(activate={"start": "?", "end": "?", "stdout": "Traceback ..."})
    [host] = summarise([broken])["hosts"]
    assert host["smoke"] is None
    assert host["cycle_seconds"] == 14.2  # the drain and the analysis still bound it


def test_the_table_shows_one_row_per_host_with_both_sides_of_the_comparison() -> None:
    inconclusive = ANALYSIS | {"verdict": "inconclusive", "outcome": "pass"}
    second = record("agent2", analysis=command("10:00:04", "10:00:14", inconclusive))
    second["analysis"]["start"] = "2026-11-29 10:00:04.000000"
    second["analysis"]["end"] = "2026-11-29 10:00:14.000000"
    table = render_table(summarise([second, record()])).splitlines()
    assert table[0].split()[:3] == ["HOST", "CYCLE", "SMOKE"]
    assert table[1].split()[:5] == ["agent1", "14.2s", "passed", "0.9s", "pass"]
    assert table[1].endswith("9.5 (8.7)")
    assert table[2].split()[4] == "pass*"
    assert table[-1].startswith("* inconclusive")
    assert max(len(line) for line in table[:-1]) <= 80
