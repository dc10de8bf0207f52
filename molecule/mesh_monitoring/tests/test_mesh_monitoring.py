"""mesh_monitoring alone on a fresh host: Prometheus and Alertmanager from packages installed
offline, configurations promtool and amtool accept, the mesh's alert rules loaded, and a scrape
target for every agent, registry host and load balancer of the inventory."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from conftest import assert_runs_and_listens

PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
TOKEN_FILE = "/etc/prometheus/mesh-registry.token"


def prometheus_api(lab_vars: dict[str, Any], path: str) -> Any:
    """GET Prometheus' HTTP API from this machine, as an operator's browser would."""
    url = f"http://{lab_vars['ansible_host']}:{PROMETHEUS_PORT}/api/v1/{path}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success"
    return body["data"]


def test_prometheus_and_alertmanager_run_enabled_and_listen(
    host: Any, lab_vars: dict[str, Any]
) -> None:
    address = lab_vars["ansible_host"]
    assert_runs_and_listens(host, "prometheus", f"tcp://{address}:{PROMETHEUS_PORT}")
    assert_runs_and_listens(host, "prometheus-alertmanager", f"tcp://{address}:{ALERTMANAGER_PORT}")


def test_they_were_installed_without_a_route_out(host: Any) -> None:
    assert host.run("ip route show default").stdout.strip() == ""
    assert host.package("prometheus").is_installed
    assert host.package("prometheus-alertmanager").is_installed


def test_the_live_configurations_pass_promtool_and_amtool(host: Any) -> None:
    assert host.run("promtool check config /etc/prometheus/prometheus.yml").rc == 0
    assert host.run("amtool check-config /etc/prometheus/alertmanager.yml").rc == 0


def test_the_mesh_alert_rules_are_loaded(lab_vars: dict[str, Any]) -> None:
    groups = prometheus_api(lab_vars, "rules")["groups"]
    names = {rule["name"] for group in groups for rule in group["rules"]}
    assert {"MeshAgentDown", "MeshRegistryDown", "MeshAgentHighErrorRate"} <= names
    assert {"MeshBackendServerDown", "MeshBackupTooOld", "MeshAgentMissingFromRegistry"} <= names


def test_every_service_of_the_inventory_is_a_scrape_target(lab_vars: dict[str, Any]) -> None:
    targets = prometheus_api(lab_vars, "targets")["activeTargets"]
    scraped = {(target["labels"]["job"], target["labels"]["host"]) for target in targets}
    jobs = {"agents": "mesh_agent", "registry": "mesh_registry", "loadbalancer": "mesh_haproxy"}
    expected = {(job, name) for group, job in jobs.items() for name in lab_vars["groups"][group]}
    assert scraped == expected


def test_the_registry_token_is_readable_by_prometheus_only(host: Any) -> None:
    token = host.file(TOKEN_FILE)
    assert token.user == "root"
    assert token.group == "prometheus"
    assert token.mode == 0o640
