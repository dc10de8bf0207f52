"""Write docs/performance.md from bench/results/*.json: every target with its verdict.

A result file may hold nested sections; a section that states a `target` and a verdict
(`met` or `target_met`) becomes a row of the targets table with its numbers beside it.
A document may also carry `tables`: [{title, columns, rows}], shown as they are, a `title`
for its heading (else the file's name) and a `reading`: what its figures mean, in sentences.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
REPORT = REPO / "docs" / "performance.md"
DESCRIBED = ("data_set", "statistic", "case", "target", "decision", "reading")  # shown first


def verdict_rows(node: Any, path: str = "") -> list[tuple[str, dict[str, Any], bool]]:
    """(section path, its scalar figures, met) for every section that carries a verdict."""
    rows: list[tuple[str, dict[str, Any], bool]] = []
    if isinstance(node, dict):
        verdict = node.get("met", node.get("target_met"))
        if isinstance(verdict, bool):
            figures = {
                key: value
                for key, value in node.items()
                if isinstance(value, int | float) and not isinstance(value, bool)
            }
            rows.append((path or "(overall)", figures, verdict))
        for key, value in node.items():
            rows.extend(verdict_rows(value, f"{path}/{key}" if path else key))
    return rows


def figure_rows(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """(dotted path, value) of every number and short string; lists of plain values (the
    runs behind a median) are left out, lists of sections are numbered."""
    if isinstance(node, dict):
        return [
            row
            for key, value in node.items()
            for row in figure_rows(value, f"{path}.{key}" if path else str(key))
        ]
    if isinstance(node, list) and node and all(isinstance(item, dict) for item in node):
        return [
            row for index, item in enumerate(node) for row in figure_rows(item, f"{path}[{index}]")
        ]
    if isinstance(node, bool) or node is None or isinstance(node, list):
        return []
    if isinstance(node, int | float) or (isinstance(node, str) and len(node) <= 60):
        return [(path, node)]
    return []


def table_lines(table: dict[str, Any]) -> list[str]:
    """A result's own table ({title, columns, rows}) as Markdown."""
    columns = [str(column) for column in table["columns"]]
    lines = [f"**{table['title']}**", "", f"| {' | '.join(columns)} |",
             f"|{' --- |' * len(columns)}"]  # fmt: skip
    lines += [f"| {' | '.join(str(cell) for cell in row)} |" for row in table["rows"]]
    return [*lines, ""]


def _commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"


def render(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# Performance",
        "",
        "Written by `make bench` (`python -m bench`) from `bench/results/*.json`; each benchmark",
        "runs alone as `python -m bench.NAME`. Figures are medians of several runs measured side",
        "by side in one run on the machine below; the raw numbers are in the JSON files.",
        "",
        f"- written: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit `{_commit()}`",
        f"- machine: {os.cpu_count()} CPUs, {platform.machine()}, "
        f"Python {platform.python_version()}",
        "",
    ]
    for name, document in sorted(results.items()):
        lines += [f"## {document.get('title', name)}", ""]  # title: a heading of its own
        for key in DESCRIBED:
            if isinstance(document.get(key), str):
                lines.append(f"- {key.replace('_', ' ')}: {document[key]}")
        lines.append("")
        rows = verdict_rows(document)
        if rows:
            lines += ["| section | figures | target met |", "| --- | --- | --- |"]
            for section, figures, met in rows:
                shown = ", ".join(f"{key} {value}" for key, value in figures.items())
                lines.append(f"| {section} | {shown} | {'yes' if met else '**no**'} |")
            lines.append("")
        for table in document.get("tables", []):
            lines += table_lines(table)
        described = ("benchmark", "title", *DESCRIBED)
        figures = [
            (path, value)
            for path, value in figure_rows({k: v for k, v in document.items() if k != "tables"})
            if path not in described
        ]
        if figures:
            lines += ["<details><summary>every figure</summary>", "",
                      "| figure | value |", "| --- | --- |"]  # fmt: skip
            lines += [f"| {path} | {value} |" for path, value in figures]
            lines += ["", "</details>", ""]
        for plot in sorted(RESULTS.glob(f"{name}*.png")):
            lines += [f"![{plot.stem}](../bench/results/{plot.name})", ""]
    return "\n".join(lines)


def write_report() -> Path:
    loaded = {path.stem: json.loads(path.read_text()) for path in sorted(RESULTS.glob("*.json"))}
    # A benchmark's data that is not a result (deploy_profile.json, shown as its own .md) has
    # no "benchmark" name and stays out of the summary.
    results = {name: document for name, document in loaded.items() if "benchmark" in document}
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(render(results))
    return REPORT
