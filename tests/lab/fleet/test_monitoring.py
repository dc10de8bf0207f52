"""Prometheus and Alertmanager on the lab's monitoring host (`lab up --monitoring`, the default of
the lab tests: db1, or lb1 in a lab without a database): every agent, registry and HAProxy
target answers, a rule file promtool refuses never replaces the live one, and a stopped agent
reaches the controller's webhook receiver as MeshAgentDown, then as resolved once it is back."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from lab.inventory import ALERT_RECEIVER_PATH, ALERT_RECEIVER_PORT
from mcp_mesh_sdk.constants import AGENT_UNIT
from tests.httpserving import serving
from tests.lab.fleet.conftest import recap

RULES_FILE = "/etc/prometheus/mesh-alerts.rules.yml"
JOBS = {"agents": "mesh_agent", "registry": "mesh_registry", "loadbalancer": "mesh_haproxy"}


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


def wait_for(what: str, check: Callable[[], Any], timeout: float, step: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(step)


def test_prometheus_scrapes_every_agent_registry_and_haproxy(fleet: Any, monitor: str) -> None:
    expected = {
        (job, host) for group, job in JOBS.items() for host in fleet.lab.groups.get(group, [])
    }

    def all_up() -> set[tuple[str, str]] | None:
        targets = prometheus(monitor, "targets")["activeTargets"]
        up = {(t["labels"]["job"], t["labels"]["host"]) for t in targets if t["health"] == "up"}
        return up if up >= expected else None

    wait_for(f"every target up ({sorted(expected)})", all_up, timeout=60)
    samples = prometheus(monitor, "query", query="up")["result"]
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
