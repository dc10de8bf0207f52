"""The fleet dashboard as one static HTML page, for a person without Grafana.

The panels are those of the Grafana dashboard the repository ships
(roles/mesh_monitoring/files/dashboards/mesh-fleet.json): their queries, units, legends and
thresholds, so the page and Grafana show the same figures. `gather()` asks Prometheus'
/api/v1/query_range for every target over the last minutes and keeps the answers:

    {"generated_at": ISO, "prometheus": URL, "start": UNIX, "end": UNIX, "step": SECONDS,
     "results": {EXPR: BODY}}

where BODY is Prometheus' answer (`{"status": "success", "data": {"resultType": "matrix",
"result": [...]}}`, or its error), or `{"status": "error", "error": ...}` when nothing answered.
`write_page()` turns that into `OUTDIR/fleet-<time>.html`: one self-contained page (inline CSS
and SVG, no script, nothing fetched) with a line chart per panel, each series' latest value, and
the hosts the answers name.

    python -m mesh_ops.fleet_page --prometheus URL --dashboard JSON --out DIR [--minutes N]

prints `{"html": PATH, "panels": N, "without_data": [TITLE, ...]}` (playbooks/fleet_page.yml
runs it with the monitoring host's Prometheus).
"""

from __future__ import annotations

import argparse
import html
import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

POINTS = 120  # points per series over the time range
CHART_WIDTH = 560
CHART_HEIGHT = 180
MARGIN_LEFT = 64
MARGIN_BOTTOM = 22
MARGIN_TOP = 8
MARGIN_RIGHT = 8
COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
THRESHOLD_COLOURS = {"green": "#2ca02c", "yellow": "#e0b400", "orange": "#ff7f0e", "red": "#d62728"}
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    id: int
    title: str
    kind: str  # "timeseries" or "stat"
    unit: str
    description: str
    targets: tuple[Target, ...]
    thresholds: tuple[tuple[float, str], ...] = ()  # (from value, colour); the base step has -inf


@dataclass
class Series:
    label: str
    points: list[tuple[float, float]] = field(default_factory=list)  # (unix time, value), NaN kept
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def finite(self) -> list[tuple[float, float]]:
        return [(t, v) for t, v in self.points if math.isfinite(v)]

    @property
    def last(self) -> float:
        finite = self.finite
        return finite[-1][1] if finite else math.nan


def load_panels(dashboard: dict[str, Any]) -> list[Panel]:
    """The dashboard's panels (rows' nested panels too), in its order."""
    found: list[Panel] = []
    for raw in dashboard.get("panels", []):
        for panel in [raw, *raw.get("panels", [])]:
            if panel.get("type") == "row" or "targets" not in panel:
                continue
            defaults = panel.get("fieldConfig", {}).get("defaults", {})
            steps = defaults.get("thresholds", {}).get("steps", [])
            found.append(
                Panel(
                    id=int(panel["id"]),
                    title=str(panel.get("title", "")),
                    kind=str(panel.get("type", "timeseries")),
                    unit=str(defaults.get("unit", "short")),
                    description=str(panel.get("description", "")),
                    targets=tuple(
                        Target(str(t["expr"]), str(t.get("legendFormat", "")))
                        for t in panel["targets"]
                    ),
                    thresholds=tuple(
                        (-math.inf if s.get("value") is None else float(s["value"]), s["color"])
                        for s in steps
                    ),
                )
            )
    return found


def legend(template: str, labels: dict[str, str]) -> str:
    """Grafana's legendFormat (`{{host}} {{outcome}}`) filled from a series' labels; without
    one, the labels as Prometheus writes them."""
    if template.strip():
        return _LEGEND.sub(lambda m: labels.get(m[1], ""), template).strip()
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(shown.items()))
    return f"{labels.get('__name__', '')}{{{inner}}}"


def series_of(target: Target, body: Any) -> tuple[list[Series], str | None]:
    """The series of one target's /api/v1/query_range answer -> (series, error or None)."""
    if not isinstance(body, dict) or not body:
        return [], "Prometheus did not answer"
    if body.get("status") != "success":
        return [], str(body.get("error") or body.get("status") or "no answer")
    found = []
    for item in body.get("data", {}).get("result", []):
        labels = {str(k): str(v) for k, v in item.get("metric", {}).items()}
        points = [(float(t), float(v)) for t, v in item.get("values", [])]  # "NaN" too
        found.append(Series(legend(target.legend, labels), points, labels))
    return found, None


def format_value(value: float, unit: str) -> str:
    """A value as the page shows it, in Grafana's unit."""
    if not math.isfinite(value):
        return "-"
    if unit == "percent":
        return f"{value:.1f} %"
    if unit == "percentunit":
        return f"{value * 100:.1f} %"
    if unit == "s":
        if abs(value) < 1:
            return f"{value * 1000:.0f} ms"
        if abs(value) < 120:
            return f"{value:.2f} s"
        if abs(value) < 7200:
            return f"{value / 60:.0f} min"
        if abs(value) < 172800:
            return f"{value / 3600:.1f} h"
        return f"{value / 86400:.0f} d"
    if unit == "reqps":
        return f"{value:.3g}/s"
    return f"{value:.4g}"


def colour_for(value: float, thresholds: tuple[tuple[float, str], ...]) -> str | None:
    """The colour of the highest threshold step `value` reaches (None without steps)."""
    colour = None
    for start, name in thresholds:
        if math.isfinite(value) and value >= start:
            colour = THRESHOLD_COLOURS.get(name, name)
    return colour


def nice_ceiling(value: float) -> float:
    """1, 2, 2.5 or 5 times a power of ten, at least `value` (> 0)."""
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= value:
            return factor * power
    return 10 * power


def svg_chart(
    series: list[Series], unit: str, start: float, end: float, step: float,
    thresholds: tuple[tuple[float, str], ...] = (),
) -> str:  # fmt: skip
    """A line chart of `series` over [start, end]; a missing step or a NaN (0/0: no calls)
    breaks a line. Threshold steps within the value range are dashed lines in their colour."""
    width = CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    height = CHART_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    values = [v for s in series for _, v in s.finite]
    top = nice_ceiling(max(values)) if values and max(values) > 0 else 1.0
    span = max(end - start, 1.0)

    def x(t: float) -> float:
        return MARGIN_LEFT + (t - start) / span * width

    def y(v: float) -> float:
        return MARGIN_TOP + height - max(min(v / top, 1.0), 0.0) * height

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" '
        f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img">',
        f'<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{width}" height="{height}" '
        'fill="#fbfbfb" stroke="#ccc"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        value = top * fraction
        parts.append(
            f'<line x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT + width}" y1="{y(value):.1f}" '
            f'y2="{y(value):.1f}" stroke="#e4e4e4"/>'
            f'<text x="{MARGIN_LEFT - 4}" y="{y(value) + 4:.1f}" text-anchor="end" '
            f'font-size="11">{html.escape(format_value(value, unit))}</text>'
        )
    for stamp, anchor in ((start, "start"), (end, "end")):
        clock = datetime.fromtimestamp(stamp, UTC).strftime("%H:%M UTC")
        parts.append(
            f'<text x="{x(stamp):.1f}" y="{CHART_HEIGHT - 6}" text-anchor="{anchor}" '
            f'font-size="11">{clock}</text>'
        )
    for value, name in thresholds:
        if math.isfinite(value) and 0 < value <= top:
            parts.append(
                f'<line x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT + width}" y1="{y(value):.1f}" '
                f'y2="{y(value):.1f}" stroke="{THRESHOLD_COLOURS.get(name, name)}" '
                'stroke-dasharray="6 4"/>'
            )
    for index, one in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        for run in _runs(one.points, step):
            if len(run) == 1:
                t, v = run[0]
                parts.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2" fill="{colour}"/>')
                continue
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in run)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _runs(points: list[tuple[float, float]], step: float) -> list[list[tuple[float, float]]]:
    runs: list[list[tuple[float, float]]] = []
    previous = None
    for point in points:
        if not math.isfinite(point[1]):
            previous = None
            continue
        if runs and previous is not None and point[0] - previous <= 1.5 * step:
            runs[-1].append(point)
        else:
            runs.append([point])
        previous = point[0]
    return runs


STYLE = """
body { font-family: sans-serif; margin: 16px; color: #222; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
.meta { color: #555; font-size: 13px; margin-bottom: 12px; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
.panel { border: 1px solid #ddd; border-radius: 4px; padding: 8px; width: 580px; }
.panel h2 { font-size: 15px; margin: 0 0 2px; }
.panel p.description { font-size: 12px; color: #666; margin: 0 0 6px; }
table { border-collapse: collapse; font-size: 12px; margin-top: 4px; }
td { padding: 1px 8px 1px 0; }
td.value { text-align: right; font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
.problem { color: #b00; font-size: 13px; }
.hosts span { display: inline-block; background: #eef; border-radius: 3px;
  padding: 1px 6px; margin: 0 4px 2px 0; }
"""


def render_panel(panel: Panel, gathered: dict[str, Any], results: dict[str, Any]) -> str:
    series: list[Series] = []
    problems = []
    for target in panel.targets:
        found, error = series_of(target, results.get(target.expr))
        series.extend(found)
        if error:
            problems.append(f"{target.expr}: {error}")
    start, end = float(gathered["start"]), float(gathered["end"])
    step = float(gathered.get("step") or 60)
    out = [
        f'<section class="panel" id="panel-{panel.id}">',
        f"<h2>{html.escape(panel.title)}</h2>",
    ]
    if panel.description:
        out.append(f'<p class="description">{html.escape(panel.description)}</p>')
    out.extend(f'<p class="problem">query failed: {html.escape(p)}</p>' for p in problems)
    if not series and not problems:
        out.append('<p class="problem">no data</p>')
    if series and panel.kind != "stat":
        out.append(svg_chart(series, panel.unit, start, end, step, panel.thresholds))
    if series:
        out.append("<table>")
        for index, one in enumerate(series):
            colour = colour_for(one.last, panel.thresholds) if panel.kind == "stat" else None
            swatch = COLOURS[index % len(COLOURS)] if panel.kind != "stat" else colour or "#999"
            out.append(
                f'<tr><td><span class="swatch" style="background:{swatch}"></span>'
                f"{html.escape(one.label)}</td>"
                f'<td class="value">{html.escape(format_value(one.last, panel.unit))}</td></tr>'
            )
        out.append("</table>")
    out.append("</section>")
    return "\n".join(out)


def hosts_named(results: dict[str, Any]) -> list[str]:
    """Every `host` label value the answers carry (the fleet's hosts Prometheus scrapes)."""
    names = set()
    for body in results.values():
        if isinstance(body, dict) and body.get("status") == "success":
            for item in body.get("data", {}).get("result", []):
                host = item.get("metric", {}).get("host")
                if host:
                    names.add(str(host))
    return sorted(names)


def render_page(dashboard: dict[str, Any], gathered: dict[str, Any]) -> str:
    panels = load_panels(dashboard)
    results = gathered.get("results") or {}
    start, end = float(gathered["start"]), float(gathered["end"])
    span = f"{(end - start) / 60:.0f} min to {datetime.fromtimestamp(end, UTC):%Y-%m-%d %H:%M} UTC"
    title = html.escape(str(dashboard.get("title", "MCP Mesh fleet")))
    hosts = "".join(f"<span>{html.escape(h)}</span>" for h in hosts_named(results))
    source = html.escape(str(gathered.get("prometheus", "")))
    body = "\n".join(render_panel(panel, gathered, results) for panel in panels)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{title}</h1>
<div class="meta">The last {html.escape(span)}, from {source}
(generated {html.escape(str(gathered.get("generated_at", "")))}).</div>
<div class="meta hosts">Hosts: {hosts or "none answered"}</div>
<div class="grid">
{body}
</div>
</body>
</html>
"""


def write_page(gathered: dict[str, Any], dashboard: dict[str, Any], outdir: Path) -> dict[str, Any]:
    outdir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.fromtimestamp(float(gathered["end"]), UTC).strftime("%Y%m%dT%H%M%SZ")
    path = outdir / f"fleet-{stamp}.html"
    path.write_text(render_page(dashboard, gathered), encoding="utf-8")
    results = gathered.get("results") or {}
    without = [
        panel.title
        for panel in load_panels(dashboard)
        if not any(
            one.finite for t in panel.targets for one in series_of(t, results.get(t.expr))[0]
        )
    ]
    return {"html": str(path), "panels": len(load_panels(dashboard)), "without_data": without}


def query_range(
    prometheus: str, expr: str, start: float, end: float, step: int, timeout: float = 10
) -> dict[str, Any]:
    """One /api/v1/query_range call -> Prometheus' answer, or an error body."""
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    url = f"{prometheus.rstrip('/')}/api/v1/query_range?{query}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310  # http(s), main() checks
            body: dict[str, Any] = json.load(response)
            return body
    except urllib.error.HTTPError as exc:  # 400/422: Prometheus says why in the body
        try:
            error: dict[str, Any] = json.load(exc)
            return error
        except ValueError:
            return {"status": "error", "error": f"HTTP {exc.code}"}
    except (OSError, ValueError) as exc:
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}


Fetch = Callable[[str, float, float, int], dict[str, Any]]


def gather(
    prometheus: str, panels: list[Panel], minutes: float, now: float, fetch: Fetch | None = None
) -> dict[str, Any]:
    """Every target's answer over the last `minutes` before `now`: POINTS steps or fewer, the
    last one at `now` (whole seconds), where the newest figures are."""
    step = max(1, math.ceil(minutes * 60 / POINTS))
    end = float(int(now))
    start = end - step * math.ceil(minutes * 60 / step)

    def default_fetch(expr: str, first: float, last: float, every: int) -> dict[str, Any]:
        return query_range(prometheus, expr, first, last, every)

    ask = fetch or default_fetch
    exprs = list(dict.fromkeys(t.expr for panel in panels for t in panel.targets))
    return {
        "generated_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        "prometheus": prometheus,
        "start": start,
        "end": end,
        "step": step,
        "results": {expr: ask(expr, start, end, step) for expr in exprs},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mesh_ops.fleet_page", description=__doc__)
    parser.add_argument("--prometheus", required=True, help="e.g. http://10.0.0.5:9090")
    parser.add_argument("--dashboard", required=True, type=Path, help="the Grafana JSON")
    parser.add_argument("--out", required=True, type=Path, help="directory of the page")
    parser.add_argument("--minutes", type=float, default=60.0, help="time range (default 60)")
    args = parser.parse_args(argv)
    if not args.prometheus.startswith(("http://", "https://")) or args.minutes <= 0:
        print("fleet page: --prometheus must be an http(s) URL, --minutes > 0", file=sys.stderr)
        return 2
    try:
        dashboard = json.loads(args.dashboard.read_text(encoding="utf-8"))
        gathered = gather(args.prometheus, load_panels(dashboard), args.minutes, time.time())
        result = write_page(gathered, dashboard, args.out)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"fleet page: cannot write the page: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
