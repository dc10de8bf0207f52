"""The per-host summary of a rollout: cycle time, smoke test and traffic analysis.

Input: what `playbooks/tasks/host_cycle.yml` registered for each host, as Ansible returns it:

    [{"host": "agent1", "verb": "upgrade",
      "drain":    {"results": [{"start": "2026-11-29 22:40:01.123456", "end": ..., ...}]},
      "activate": {"start": ..., "end": ..., "stdout": "<release activate --json>"},
      "enable":   {"results": [{"start": ..., "end": ..., "stdout": "<lb enable --json>"}]},
      "analysis": {"start": ..., "end": ..., "stdout": "<release analyse --json>"} or {}}]

A host's cycle runs from the start of its drain (or of its activation, where nothing was
drained) to the end of its analysis (or of its enable, or of its activation). Missing or
unreadable pieces show as null, never as an error: the summary must not fail a rollout that
passed.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # ansible.builtin.command's start and end


def _results(step: Any) -> list[dict[str, Any]]:
    """A registered result, or the items of a looped one (drain/enable per load balancer)."""
    if not isinstance(step, dict) or step.get("skipped"):
        return []
    items = step.get("results")
    if isinstance(items, list):
        return [item for item in items if isinstance(item, dict) and not item.get("skipped")]
    return [step] if step else []


def _time(result: dict[str, Any], key: str) -> datetime | None:
    try:
        return datetime.strptime(str(result[key]), TIME_FORMAT)
    except (KeyError, ValueError):
        return None


def _document(step: Any) -> dict[str, Any]:
    """The JSON a command printed (the last one of a looped step), or {}."""
    for result in reversed(_results(step)):
        try:
            document = json.loads(result.get("stdout") or "")
        except ValueError:
            continue
        if isinstance(document, dict):
            return document
    return {}


def _bounds(record: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    start = end = None
    for name in ("drain", "activate"):
        times = [_time(result, "start") for result in _results(record.get(name))]
        if known := [t for t in times if t is not None]:
            start = min(known)
            break
    for name in ("analysis", "enable", "activate"):
        times = [_time(result, "end") for result in _results(record.get(name))]
        if known := [t for t in times if t is not None]:
            end = max(known)
            break
    return start, end


def _round(value: Any, digits: int = 3) -> float | None:
    return round(float(value), digits) if isinstance(value, int | float) else None


def summarise_host(record: dict[str, Any]) -> dict[str, Any]:
    start, end = _bounds(record)
    activation = _document(record.get("activate"))
    smoke = activation.get("smoke") if isinstance(activation.get("smoke"), dict) else None
    analysis = _document(record.get("analysis"))
    canary = analysis.get("canary") or {}
    baseline = analysis.get("baseline") or {}
    return {
        "host": record.get("host"),
        "verb": record.get("verb"),
        "release": activation.get("release"),
        "replaced": activation.get("replaced"),
        "cycle_seconds": _round((end - start).total_seconds(), 2) if start and end else None,
        "activation_seconds": activation.get("seconds") or {},
        "smoke": smoke,
        "analysis": {
            "verdict": analysis.get("verdict"),
            "outcome": analysis.get("outcome"),
            "message": analysis.get("message"),
            "seconds": _round(analysis.get("seconds"), 2),
            "early_abort": analysis.get("early_abort"),
            "canary": {key: canary.get(key) for key in _FIGURES},
            "baseline": {key: baseline.get(key) for key in _FIGURES} if baseline else None,
        }
        if analysis
        else None,
    }


_FIGURES = ("calls", "server_errors", "server_error_ratio", "p95_ms", "avg_ms")


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    hosts = [summarise_host(record) for record in records if isinstance(record, dict)]
    return {"hosts": sorted(hosts, key=lambda host: str(host["host"]))}


def _figure(value: Any, unit: str = "", digits: int = 1) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.{digits}f}{unit}"


def _smoke_cell(smoke: dict[str, Any] | None) -> str:
    if smoke is None:
        return "-"
    shown = "passed" if smoke.get("passed") else "FAILED"
    return f"{shown} {_figure(smoke.get('seconds'), 's')}"


INCONCLUSIVE_NOTE = "* inconclusive: too few calls; passed or failed by mesh_upgrade_inconclusive"


def render_table(summary: dict[str, Any]) -> str:
    """Narrow enough for Ansible's output (it folds lines of over 80 characters)."""
    headers = ["HOST", "CYCLE", "SMOKE", "ANALYSIS", "CALLS", "SERVER ERR", "P95 MS (BASE)"]
    rows = []
    for host in summary["hosts"]:
        analysis = host["analysis"] or {}
        canary = analysis.get("canary") or {}
        baseline = analysis.get("baseline") or {}
        verdict = analysis.get("verdict") or "-"
        if verdict == "inconclusive":
            verdict = f"{analysis.get('outcome')}*"
        ratio = canary.get("server_error_ratio")
        rows.append([
            str(host["host"]),
            _figure(host["cycle_seconds"], "s"),
            _smoke_cell(host["smoke"]),
            verdict,
            str(canary.get("calls", "-")),
            "-" if ratio is None else f"{canary.get('server_errors')} ({ratio:.0%})",
            "-" if not canary else
            f"{_figure(canary.get('p95_ms'))} ({_figure(baseline.get('p95_ms'))})",
        ])  # fmt: skip
    lines = [headers, *rows]
    widths = [max(len(line[column]) for line in lines) for column in range(len(headers))]
    table = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
    if any(host["analysis"] and host["analysis"]["verdict"] == "inconclusive"
           for host in summary["hosts"]):  # fmt: skip
        table.append(INCONCLUSIVE_NOTE)
    return "\n".join(table)
