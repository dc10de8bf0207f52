"""Prometheus and Alertmanager on the lab's monitoring host (`lab up --monitoring`, the default of
the lab tests: db1, or lb1 in a lab without a database): every agent, registry and HAProxy
target answers, a rule file promtool refuses never replaces the live one, and a stopped agent
reaches the controller's webhook receiver as MeshAgentDown, then as resolved once it is back."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from lab.inventory import ALERT_RECEIVER_PATH, ALERT_RECEIVER_PORT
from mcp_mesh_sdk.constants import AGENT_UNIT
from tests.httpserving import serving
from tests.lab.conftest import REPO
from tests.lab.fleet.conftest import recap
from tests.lab.fleet.loadgen import LoadGenerator, Sample, tool_answer, tool_call
from tests.lab.fleet.polling import wait_for
from tests.lab.fleet.test_diagnostics_playbook import CLI, lb_servers_up, open_incidents, ready

RULES_FILE = "/etc/prometheus/mesh-alerts.rules.yml"
JOBS = {"agents": "mesh_agent", "registry": "mesh_registry", "loadbalancer": "mesh_haproxy"}
DASHBOARD = REPO / "roles" / "mesh_monitoring" / "files" / "dashboards" / "mesh-fleet.json"
ARTIFACTS = REPO / "reports" / "artifacts"  # kept after the run (CI uploads it); gitignored
BASE_DIRECTORY = "/var/lib/mcp-mesh/data"


@pytest.fixture(scope="module")
def monitor(fleet: Any) -> str:
    """The monitoring host's address."""
    hosts = fleet.lab.groups.get("monitoring") or []
    if not hosts:
        pytest.skip("this lab has no monitoring group (lab up --monitoring, MESH_LAB_MONITORING=1)")
    return str(fleet.lab.hosts[hosts[0]])


def prometheus(address: str, path: str, **query: str) -> Any:
    url = f"http://{address}:9090/api/v1/{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)["data"]


def test_prometheus_scrapes_every_agent_registry_and_haproxy(fleet: Any, monitor: str) -> None:
    expected = {
        (job, host) for group, job in JOBS.items() for host in fleet.lab.groups.get(group, [])
    }

    def all_up() -> set[tuple[str, str]] | None:
        targets = prometheus(monitor, "targets")["activeTargets"]
        up = {(t["labels"]["job"], t["labels"]["host"]) for t in targets if t["health"] == "up"}
        return up if up >= expected else None

    wait_for(f"every target up ({sorted(expected)})", all_up, timeout=60)
    # Debian's package starts Prometheus with its own example configuration (itself and a node
    # exporter) before the role's replaces it; those series linger for 5 minutes after the restart.
    mesh_jobs = "|".join(JOBS.values())
    samples = prometheus(monitor, "query", query=f'up{{job=~"{mesh_jobs}"}}')["result"]
    assert {(s["metric"]["job"], s["metric"]["host"]): s["value"][1] for s in samples} == {
        target: "1" for target in expected
    }
    rules = prometheus(monitor, "rules")["groups"]
    assert all(rule["health"] == "ok" for group in rules for rule in group["rules"])
    members = prometheus(monitor, "query", query="mcp_mesh_registry_agent")["result"]
    assert {s["metric"]["agent_name"] for s in members} >= set(fleet.lab.groups["agents"])


def test_a_rule_file_promtool_refuses_leaves_the_live_rules(
    fleet: Any, monitor: str, lab_host: Callable[[str], Any]
) -> None:
    name = fleet.lab.groups["monitoring"][0]
    host = lab_host(name)
    before = hashlib.sha256(host.file(RULES_FILE).content).hexdigest()
    limited = ["--tags", "mesh_monitoring", "--limit", name]
    refused = fleet.playbook(*limited, "-e", "mesh_monitoring_alert_rate_window=5x")
    assert refused.returncode != 0
    assert "bad duration syntax" in refused.stdout
    assert hashlib.sha256(host.file(RULES_FILE).content).hexdigest() == before
    loaded = [
        rule["query"]
        for group in prometheus(monitor, "rules")["groups"]
        for rule in group["rules"]
        if rule["name"] == "MeshAgentHighErrorRate"
    ]
    assert len(loaded) == 1 and "[5m]" in loaded[0]
    again = fleet.playbook(*limited)
    assert again.returncode == 0, again.stdout[-4000:]
    assert recap(again.stdout)[name]["changed"] == 0, again.stdout[-4000:]


class Receiver(ThreadingHTTPServer):
    """Alertmanager's webhook: keeps every notification's alerts."""

    def __init__(self, address: str) -> None:
        super().__init__((address, ALERT_RECEIVER_PORT), _Handler)
        self.alerts: list[dict[str, Any]] = []

    def seen(self, name: str, status: str, host: str) -> bool:
        return any(
            alert["status"] == status
            and alert["labels"].get("alertname") == name
            and alert["labels"].get("host") == host
            for alert in list(self.alerts)
        )


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == ALERT_RECEIVER_PATH:
            self.server.alerts.extend(body.get("alerts", []))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver(fleet: Any) -> Iterator[Receiver]:
    with serving(Receiver(fleet.lab.controller)) as server:
        yield server


def test_a_stopped_agent_fires_agent_down_and_resolves_when_back(
    fleet: Any, monitor: str, receiver: Receiver, lab_host: Callable[[str], Any]
) -> None:
    agent = fleet.lab.groups["agents"][-1]
    host = lab_host(agent)
    assert host.run(f"systemctl stop {AGENT_UNIT}").rc == 0
    try:
        # down for 20 s (the lab's mesh_monitoring_alert_down_for), scraped and evaluated every
        # 5 s, grouped for 5 s: well within a minute
        wait_for(
            "MeshAgentDown at the receiver",
            lambda: receiver.seen("MeshAgentDown", "firing", agent),
            timeout=90,
        )
    finally:
        assert host.run(f"systemctl start {AGENT_UNIT}").rc == 0
    wait_for(
        "MeshAgentDown resolved at the receiver",
        lambda: receiver.seen("MeshAgentDown", "resolved", agent),
        timeout=90,
    )

    def ready() -> bool:
        try:
            with fleet.urlopen(fleet.agent_url(agent, "/ready"), timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    wait_for(f"{agent} ready again", ready, timeout=60)


# The fleet's Grafana dashboard (docs/monitoring.md): every query returns series, and the static
# fleet page (playbooks/fleet_page.yml) renders in headless Chromium, its screenshot kept in
# reports/artifacts/. Then the error-rate alert: 20 % server errors on one agent fire
# MeshAgentHighErrorRate at the receiver, while an agent answering only missing-file reads
# (client errors) fires nothing.


def mesh_traffic(fleet: Any) -> None:
    """On every agent a write, a read and a read of a missing file: every outcome class and an
    error kind (not_found) exist, so every dashboard query has something to show."""
    token = fleet.tokens["agent"]
    for name in fleet.lab.groups["agents"]:
        url = fleet.agent_url(name, "/mcp")
        path = f"dashboard/{uuid.uuid4().hex[:8]}.txt"
        wrote = tool_answer(url, token, "write_file", {"path": path, "content": "x\n"},
                            fleet.ssl_context)  # fmt: skip
        read = tool_answer(url, token, "read_file", {"path": path}, fleet.ssl_context)
        missing = tool_answer(url, token, "read_file", {"path": f"{path}.missing"},
                              fleet.ssl_context)  # fmt: skip
        assert wrote.ok and read.ok, (wrote.detail, read.detail)
        assert missing.answered and not missing.ok, missing.detail


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def every_query_answered(monitor: str) -> None:
    """Wait until every dashboard query returns at least one series (a new error kind needs two
    scrapes, 5 s apart, before rate() sees it)."""
    queries = dashboard_queries()
    assert len(queries) >= 12

    def empty() -> list[str]:
        return [
            f"{title}: {expr}"
            for title, expr in queries
            if not prometheus(monitor, "query", query=expr)["result"]
        ]

    deadline = time.monotonic() + 45
    while missing := empty():
        if time.monotonic() > deadline:
            pytest.fail("dashboard queries without a series after 45 s:\n" + "\n".join(missing))
        time.sleep(2)


def test_every_dashboard_query_returns_series_from_the_labs_prometheus(
    fleet: Any, monitor: str
) -> None:
    mesh_traffic(fleet)
    every_query_answered(monitor)
    agents = set(fleet.lab.groups["agents"])
    for expr in ('sum by (host, outcome) (rate(mcp_mesh_agent_operations_total[5m]))',
                 'mcp_mesh_agent_system{figure="memory_percent"}'):  # fmt: skip
        named = {
            s["metric"].get("host") for s in prometheus(monitor, "query", query=expr)["result"]
        }
        assert named >= agents, (expr, named)


def distinct_colours(png: Path) -> tuple[tuple[int, int], int, float]:
    """(width, height), the number of distinct colours, the share of pixels that are not
    the page's white background."""
    with Image.open(png) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 24) or []
        white = next((count for count, colour in colours if colour == (255, 255, 255)), 0)
        pixels = rgb.width * rgb.height
        return (rgb.width, rgb.height), len(colours), 1 - white / pixels


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium as root (hence --no-sandbox), with a throwaway profile."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("no chromium on PATH: `make deps` installs Debian's chromium")
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_fleet_page_renders_in_headless_chromium_and_names_every_agent(
    fleet: Any, monitor: str, tmp_path: Path
) -> None:
    mesh_traffic(fleet)
    every_query_answered(monitor)
    done = fleet.playbook(
        "-e", f"mesh_fleet_page_report_dir={tmp_path}", "-e", "mesh_fleet_page_minutes=15",
        playbook="playbooks/fleet_page.yml",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    pages = sorted(tmp_path.glob("fleet-*.html"))
    assert len(pages) == 1, done.stdout[-3000:]
    page = pages[0].read_text(encoding="utf-8")
    agents = fleet.lab.groups["agents"]
    for name in agents:
        assert f"<span>{name}</span>" in page, name  # the page's list of hosts
    assert page.count("<svg") >= 8 and "query failed" not in page and "no data" not in page
    assert "panels without data: none" in done.stdout, done.stdout[-3000:]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(pages[0], ARTIFACTS / "fleet-page.html")
    shot = ARTIFACTS / "fleet-page.png"
    shot.unlink(missing_ok=True)
    width, height = 1280, 2200
    taken = chromium(
        tmp_path / "profile",
        f"--screenshot={shot}",
        f"--window-size={width},{height}",
        pages[0].as_uri(),
    )
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    size, colours, inked = distinct_colours(shot)
    assert size == (width, height)
    # text, chart lines in their colours, threshold lines, swatches: far from a blank page
    assert colours > 64 and inked > 0.02, (colours, inked)
    dom = chromium(tmp_path / "profile", "--dump-dom", pages[0].as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert all(f"<span>{name}</span>" in dom.stdout for name in agents)
    assert dom.stdout.count("<section") == len(json.loads(DASHBOARD.read_text())["panels"])


@dataclass
class Reads(LoadGenerator):
    """read_file calls of `paths` in turn on one agent's own /mcp (bounded like every load);
    a call the agent answered with isError is recorded as "isError"."""

    token: str = ""
    paths: list[str] = field(default_factory=list)
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def _one(self) -> Sample:
        path = self.paths[next(self._counter) % len(self.paths)]
        started = time.monotonic()
        answer = tool_answer(self.url, self.token, "read_file", {"path": path}, self.ssl_context)
        refused = answer.answered and not answer.ok
        detail = "isError" if refused else answer.detail
        return Sample(started, time.monotonic() - started, answer.ok, detail)


def instance_of(monitor: str, host: str) -> str:
    found = prometheus(monitor, "query", query=f'up{{job="mesh_agent",host="{host}"}}')["result"]
    assert len(found) == 1, found
    return str(found[0]["metric"]["instance"])


def test_server_errors_fire_the_error_rate_alert_and_missing_file_reads_do_not(
    fleet: Any, monitor: str, receiver: Receiver, lab_host: Callable[[str], Any]
) -> None:
    agents = fleet.lab.groups["agents"]
    if len(agents) < 2:
        pytest.skip("needs two agents: one failing reads, one asked for missing files")
    failing, asked = agents[0], agents[1]
    failing_instance, asked_instance = instance_of(monitor, failing), instance_of(monitor, asked)
    host = lab_host(failing)
    run = uuid.uuid4().hex[:8]
    readable, locked = f"error-rate-{run}.txt", f"error-rate-{run}-locked.txt"
    token = fleet.tokens["agent"]
    assert tool_call(fleet.agent_url(failing, "/mcp"), token, "write_file",
                     {"path": readable, "content": "ok\n"}, fleet.ssl_context)[0]  # fmt: skip
    # A file the service's own user may not read: read_file fails with EACCES, a server error.
    host.check_output(f"install -m 0000 -o root -g root /dev/null {BASE_DIRECTORY}/{locked}")

    def alerted(instance: str) -> bool:
        return any(
            alert["status"] == "firing"
            and alert["labels"].get("alertname") == "MeshAgentHighErrorRate"
            and alert["labels"].get("instance") == instance
            for alert in list(receiver.alerts)
        )

    one_in_five = [readable] * 4 + [locked]
    missing = [f"error-rate-{run}-missing-{n}.txt" for n in range(5)]
    loads = [
        Reads(fleet.agent_url(failing, "/mcp"), fleet.ssl_context, rate=10, threads=2,
              max_seconds=150, max_requests=1500, token=token, paths=one_in_five),
        Reads(fleet.agent_url(asked, "/mcp"), fleet.ssl_context, rate=10, threads=2,
              max_seconds=150, max_requests=1500, token=token, paths=missing),
    ]  # fmt: skip
    started = time.monotonic()
    try:
        with loads[0], loads[1]:
            # above 5 % for the lab's 20 s (mesh_monitoring_alert_error_rate_for), evaluated
            # every 5 s, grouped for 5 s
            wait_for("MeshAgentHighErrorRate at the receiver", lambda: alerted(failing_instance),
                     timeout=120)  # fmt: skip
            fired_after = time.monotonic() - started
            client_errors = prometheus(monitor, "query", query=(
                f'sum(rate(mcp_mesh_agent_operations_total{{host="{asked}",outcome="client_error"}}[1m]))'
            ))["result"]  # fmt: skip
            asked_alerts = prometheus(monitor, "query", query=(
                f'ALERTS{{alertname="MeshAgentHighErrorRate",instance="{asked_instance}"}}'
            ))["result"]  # fmt: skip
    finally:
        host.run(f"rm -f {BASE_DIRECTORY}/{locked}")
        # A restart forgets the failed reads, so resolving the incident does not bring it back.
        host.run(f"systemctl restart {AGENT_UNIT}")
        wait_for(f"{failing} ready again", lambda: ready(fleet, failing), timeout=60)
        for incident in open_incidents(host):
            host.run(f"{CLI} incidents resolve {incident['id']} --note 'lab test cleanup'")
        wait_for("every agent UP in the load balancer", lambda: lb_servers_up(fleet.lab), 60)
    print(f"\nMeshAgentHighErrorRate reached the receiver {fired_after:.0f} s after the load began")
    failed = loads[0].failures
    assert 0.15 <= len(failed) / len(loads[0].samples) <= 0.25, (len(failed), len(loads[0].samples))
    assert all(s.detail == "isError" for s in failed), failed[:3]  # the agent answered each
    # the other agent answered nothing but client errors, at a high rate, and fired nothing
    assert loads[1].samples and all(s.detail == "isError" for s in loads[1].samples)
    assert client_errors and float(client_errors[0]["value"][1]) > 2, client_errors
    assert asked_alerts == []  # neither pending nor firing
    assert not any(
        alert["labels"].get("instance") == asked_instance for alert in list(receiver.alerts)
    )
