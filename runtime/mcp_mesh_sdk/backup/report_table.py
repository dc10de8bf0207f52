"""`backup report` as text: a table that fits 80 columns, then the verdict on one line.

The verdict stays one line so that a playbook printing the output line by line shows it as one
message (Ansible folds it); what does not fit in a row, the problem, goes on lines of its own.
"""

from __future__ import annotations

import textwrap

from mcp_mesh_sdk.backup.report import BackupReport, Row
from mcp_mesh_sdk.backup.verify import LEGACY

WIDTH = 80
HEADERS = ("WHERE", "BACKUP", "AGE(h)", "SIZE", "VERIFIED")
RIGHT_ALIGNED = {2, 3}  # the figures
GAP = "  "
PROBLEM_INDENT = " " * 7


def human_size(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def _cells(row: Row) -> list[str]:
    age = "?" if row.age_hours is None else f"{row.age_hours:.1f}"
    return [row.location, row.backup, age, human_size(row.size), "yes" if row.verified else "NO"]


def _fit(text: str, width: int) -> str:
    """`text`, or its end behind an ellipsis: a backup's name ends in what tells them apart."""
    return text if len(text) <= width else "…" + text[len(text) - width + 1 :]


def render_table(report: BackupReport) -> str:
    lines: list[str] = []
    if report.rows:
        table = [list(HEADERS), *(_cells(row) for row in report.rows)]
        widths = [max(len(line[column]) for line in table) for column in range(len(HEADERS))]
        others = sum(widths) - widths[1] + len(GAP) * (len(HEADERS) - 1)
        widths[1] = min(widths[1], WIDTH - others)
        for line, row in zip(table, [None, *report.rows], strict=True):
            line[1] = _fit(line[1], widths[1])
            cells = [
                cell.rjust(width) if column in RIGHT_ALIGNED else cell.ljust(width)
                for column, (cell, width) in enumerate(zip(line, widths, strict=True))
            ]
            lines.append(GAP.join(cells).rstrip())
            if row is not None and row.encrypted is False:
                lines.append(PROBLEM_INDENT + LEGACY)
            if row is not None and row.problem:
                lines += textwrap.wrap(
                    row.problem,
                    WIDTH,
                    initial_indent=PROBLEM_INDENT,
                    subsequent_indent=PROBLEM_INDENT + "  ",
                )
    lines.append(report.verdict.message)
    return "\n".join(lines)
