"""The fleet's Grafana dashboard (roles/mesh_monitoring/files/dashboards/mesh-fleet.json) and
the static page drawn from it (mesh_ops.fleet_page, playbooks/fleet_page.yml).

The dashboard imports into any Grafana with a Prometheus (a datasource variable, no fixed uid),
every panel has queries, every query is PromQL promtool accepts, and every metric it names is one
the runtime, HAProxy's exporter or Prometheus itself exports. The page shows every panel, names
the hosts, and needs nothing but the file (no script, nothing fetched).
The lab test (tests/lab/fleet/test_fleet_dashboard.py) runs the queries on a real Prometheus."""

from __future__ import annotations

import json
import math
import re
import subprocess
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh_ops import fleet_page
from tests.httpserving import serving
from tests.unit.test_monitoring_rules import promtool

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "roles" / "mesh_monitoring" / "files" / "dashboards" / "mesh-fleet.json"
RUNTIME = ROOT / "runtime" / "mcp_mesh_sdk"
DEFAULTS = ROOT / "roles" / "mesh_monitoring" / "defaults" / "main.yml"
RULES = ROOT / "roles" / "mesh_monitoring" / "templates" / "mesh-alerts.rules.yml.j2"
METRIC = re.compile(r"\b((?:mcp_mesh|haproxy)_[a-z0-9_]+)")
SUFFIXES = ("_total", "_bucket", "_sum", "_count")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def targets(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [target for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_the_prometheus_datasource_is_a_template_variable(dashboard: dict[str, Any]) -> None:
    variables = dashboard["templating"]["list"]
    sources = [v for v in variables if v["type"] == "datasource"]
    assert [(v["name"], v["query"]) for v in sources] == [("datasource", "prometheus")]
    reference = {"type": "prometheus", "uid": "${datasource}"}
    assert all(panel["datasource"] == reference for panel in dashboard["panels"])
    assert all(target["datasource"] == reference for target in targets(dashboard))
    assert "__inputs" not in dashboard  # nothing to map on import: the variable picks one
    assert dashboard["uid"] and dashboard["title"]


def test_every_panel_has_queries_and_a_unique_id(dashboard: dict[str, Any]) -> None:
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    for panel in panels:
        assert panel["title"] and panel["type"] in ("timeseries", "stat"), panel["id"]
        assert panel["targets"], f"panel {panel['title']} has no query"
        assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_no_two_panels_overlap(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_every_query_is_promql_promtool_accepts(dashboard: dict[str, Any], tmp_path: Path) -> None:
    rules = [
        {"record": f"mesh_dashboard:panel_{panel['id']}_{target['refId']}", "expr": target["expr"]}
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(rules)} rules found" in done.stdout


def test_every_metric_queried_is_one_the_fleet_exports(dashboard: dict[str, Any]) -> None:
    runtime = "\n".join(path.read_text(encoding="utf-8") for path in RUNTIME.rglob("*.py"))
    named = {name for target in targets(dashboard) for name in METRIC.findall(target["expr"])}
    unknown = set()
    for name in named:
        base = next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), name)
        prefix, _, short = base.partition("_agent_")
        defined = f'"{base}"' in runtime or (
            prefix == "mcp_mesh" and f'f"{{PREFIX}}_{short}"' in runtime
        )
        # HAProxy's exporter: the series the alert rules already read
        if not defined and not (name.startswith("haproxy_") and name in RULES.read_text()):
            unknown.add(name)
    assert named and unknown == set()


def test_the_panels_cover_what_an_operator_of_the_fleet_looks_at(
    dashboard: dict[str, Any],
) -> None:
    queries = " ".join(target["expr"] for target in targets(dashboard))
    for needed in (
        'mcp_mesh_agent_operations_total{outcome="server_error"}',  # the alerting error ratio
        "sum by (host, outcome) (rate(mcp_mesh_agent_operations_total",  # outcome classes
        "histogram_quantile(0.95",
        "mcp_mesh_agent_operation_errors_total",
        'figure="memory_percent"',
        'figure="disk_usage_percent"',
        'haproxy_server_status{state="UP"}',
        "mcp_mesh_registry_agents_by_status",
        "mcp_mesh_agent_backup_last_success_timestamp_seconds",
    ):
        assert needed in queries, needed
    # the job names the queries pick are the role's defaults (and so the scrape config's)
    defaults = yaml.safe_load(DEFAULTS.read_text(encoding="utf-8"))
    jobs = {defaults[f"mesh_monitoring_{kind}_job"] for kind in ("agent", "registry", "haproxy")}
    assert set(re.findall(r"mesh_[a-z]+", queries.split('up{job=~"')[1].split('"')[0])) == jobs


# --- the static page -------------------------------------------------------------------------


def matrix(*series: tuple[dict[str, str], list[tuple[float, str]]]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": labels, "values": [[t, v] for t, v in values]}
                for labels, values in series
            ],
        },
    }


def fake_answers(dashboard: dict[str, Any], hosts: list[str]) -> dict[str, dict[str, Any]]:
    """Every query answered with one rising series per host, outcome, status..."""
    answers = {}
    for target in targets(dashboard):
        labels = re.findall(r"\{\{(\w+)\}\}", target["legendFormat"])
        rows = []
        for index, host in enumerate(hosts):
            metric = {name: f"{name}-{index}" for name in labels} | {"host": host}
            rows.append((metric, [(1000.0 + 15 * i, str(index + i / 10)) for i in range(20)]))
        answers[target["expr"]] = matrix(*rows)
    return answers


def gathered_with(answers: dict[str, Any], dashboard: dict[str, Any]) -> dict[str, Any]:
    panels = fleet_page.load_panels(dashboard)
    asked: list[tuple[str, float, float, int]] = []

    def fetch(expr: str, start: float, end: float, step: int) -> dict[str, Any]:
        asked.append((expr, start, end, step))
        return answers.get(expr, {"status": "error", "error": "no such query"})

    gathered = fleet_page.gather("http://prom.example:9090", panels, 5, 1300.9, fetch)
    assert {expr for expr, *_ in asked} == {t["expr"] for t in targets(dashboard)}
    # 5 minutes in steps of 3 s (120 points at most), the last one at the whole second of `now`
    assert {(start, end, step) for _, start, end, step in asked} == {(1000.0, 1300.0, 3)}
    return gathered


def test_the_page_shows_every_panel_and_names_every_host(dashboard: dict[str, Any]) -> None:
    hosts = ["agent1", "agent2", "lb1"]
    page = fleet_page.render_page(
        dashboard, gathered_with(fake_answers(dashboard, hosts), dashboard)
    )
    for panel in dashboard["panels"]:
        assert f'id="panel-{panel["id"]}"' in page
        assert panel["title"].replace("&", "&amp;") in page
    assert re.search(r"Hosts: <span>agent1</span><span>agent2</span><span>lb1</span>", page)
    charts = sum(1 for panel in dashboard["panels"] if panel["type"] == "timeseries")
    assert page.count("<svg") == charts
    assert "no data" not in page and "query failed" not in page
    assert "<script" not in page and "http://prom.example:9090/" not in page.split("<body>")[0]
    assert 'src="' not in page and "<link" not in page  # nothing for the browser to fetch
    # legends are the dashboard's (`{{host}} {{outcome}}`), with each series' latest value
    assert "agent2 outcome-1" in page and "agent2 p95" in page


def test_a_failed_or_empty_query_is_said_in_its_panel(dashboard: dict[str, Any]) -> None:
    answers = fake_answers(dashboard, ["agent1"])
    first, second = dashboard["panels"][0], dashboard["panels"][1]
    answers[first["targets"][0]["expr"]] = {"status": "error", "error": "parse error at <x>"}
    answers[second["targets"][0]["expr"]] = matrix()
    gathered = gathered_with(answers, dashboard)
    page = fleet_page.render_page(dashboard, gathered)
    one = page.split(f'id="panel-{first["id"]}"')[1].split("</section>")[0]
    two = page.split(f'id="panel-{second["id"]}"')[1].split("</section>")[0]
    assert "query failed" in one and "parse error at &lt;x&gt;" in one and "<svg" not in one
    assert "no data" in two and "<svg" not in two


def test_label_values_are_escaped_and_nan_is_a_gap() -> None:
    panel = fleet_page.Panel(1, "t", "timeseries", "s", "", (fleet_page.Target("q", "{{host}}"),))
    body = matrix(({"host": "<b>evil</b>"}, [(0.0, "1"), (15.0, "NaN"), (30.0, "2"), (45.0, "3")]))
    found, error = fleet_page.series_of(panel.targets[0], body)
    assert error is None and found[0].finite == [(0.0, 1.0), (30.0, 2.0), (45.0, 3.0)]
    assert found[0].last == 3.0
    html = fleet_page.render_panel(panel, {"start": 0, "end": 45, "step": 15}, {"q": body})
    assert "&lt;b&gt;evil&lt;/b&gt;" in html and "<b>evil" not in html
    missing = fleet_page._runs([(0.0, 1.0), (15.0, 1.0), (45.0, 2.0)], 15)  # no point at 30
    assert [len(run) for run in missing] == [2, 1]
    # a NaN breaks the line: a dot at 0, a line from 30 to 45
    assert html.count("<polyline") == 1 and html.count("<circle") == 1


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (12.345, "percent", "12.3 %"),
        (0.2, "percentunit", "20.0 %"),
        (0.0421, "s", "42 ms"),
        (3.5, "s", "3.50 s"),
        (30 * 3600, "s", "30.0 h"),
        (1.5e9, "s", "17361 d"),
        (2.5, "reqps", "2.5/s"),
        (0.0123, "reqps", "0.0123/s"),
        (3.0, "short", "3"),
        (math.nan, "percent", "-"),
    ],
)
def test_values_are_shown_in_the_panels_unit(value: float, unit: str, shown: str) -> None:
    assert fleet_page.format_value(value, unit) == shown


def test_the_time_range_ends_on_a_step() -> None:
    gathered = fleet_page.gather("http://p:9090", [], 15, 5000.7, lambda *_: {})
    assert (gathered["end"], gathered["step"]) == (5000.0, 8)
    assert (gathered["end"] - gathered["start"]) % 8 == 0 and gathered["start"] <= 5000 - 900


def test_a_stat_value_takes_its_threshold_colour(dashboard: dict[str, Any]) -> None:
    backup = next(p for p in fleet_page.load_panels(dashboard) if "backup" in p.title.lower())
    assert backup.kind == "stat" and backup.unit == "s"
    assert fleet_page.colour_for(3600, backup.thresholds) == fleet_page.THRESHOLD_COLOURS["green"]
    assert fleet_page.colour_for(27 * 3600, backup.thresholds) == "#d62728"


class _Prometheus(ThreadingHTTPServer):
    answers: dict[str, Any]


class _Handler(BaseHTTPRequestHandler):
    server: _Prometheus

    def do_GET(self) -> None:
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        body = self.server.answers.get(query["query"][0])
        status = 200 if body else 400
        data = json.dumps(body or {"status": "error", "error": "bad_data: parse error"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def prometheus(dashboard: dict[str, Any]) -> Iterator[_Prometheus]:
    server = _Prometheus(("127.0.0.1", 0), _Handler)
    server.answers = fake_answers(dashboard, ["agent1", "agent2"])
    with serving(server):
        yield server


def test_the_command_asks_prometheus_and_writes_one_page(
    prometheus: _Prometheus, dashboard: dict[str, Any], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    dropped = targets(dashboard)[0]["expr"]
    del prometheus.answers[dropped]  # Prometheus refuses this one (400, its error in the body)
    url = f"http://127.0.0.1:{prometheus.server_address[1]}"
    argv = ["--prometheus", url, "--dashboard", str(DASHBOARD), "--out", str(tmp_path / "r")]
    assert fleet_page.main([*argv, "--minutes", "10"]) == 0
    result = json.loads(capsys.readouterr().out)
    page = Path(result["html"]).read_text(encoding="utf-8")
    assert Path(result["html"]).parent == tmp_path / "r" and result["panels"] == 12
    assert result["without_data"] == [dashboard["panels"][0]["title"]]
    assert "bad_data: parse error" in page and "agent1" in page and "agent2" in page


def test_the_command_refuses_what_it_cannot_ask(tmp_path: Path) -> None:
    argv = ["--dashboard", str(DASHBOARD), "--out", str(tmp_path)]
    assert fleet_page.main(["--prometheus", "file:///etc/passwd", *argv]) == 2
    assert fleet_page.main(["--prometheus", "http://127.0.0.1:9", *argv, "--minutes", "0"]) == 2
    assert list(tmp_path.iterdir()) == []
