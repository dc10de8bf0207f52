"""mesh_monitoring's prometheus.yml, rendered for an inventory, is what `promtool check config`
accepts, and scrapes every agent, registry and load balancer where the inventory puts them."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import jinja2
import yaml

from tests.unit.test_monitoring_rules import promtool, render_rules

ROLE = Path(__file__).resolve().parents[2] / "roles" / "mesh_monitoring"

TARGETS = {
    "agents": [["agent1", "10.0.0.11", 8080], ["agent2", "10.0.0.12", 9090]],
    "registries": [["lb1", "10.0.0.10", 8000]],
    "loadbalancers": [["lb1", "10.0.0.10", 8404]],
}


def render(template: str, tmp_path: Path, **overrides: Any) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLE / "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["comment"] = lambda text: f"# {text}"
    env.filters["to_json"] = lambda value: f'"{value}"'
    env.filters["bool"] = bool
    variables: dict[str, Any] = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    variables.update(
        ansible_managed="Ansible managed",
        mesh_monitoring_listen_address="10.0.0.10",
        mesh_monitoring_tls_enabled=True,
        _mesh_monitoring_scheme="https",
        _mesh_monitoring_targets=TARGETS,
        _mesh_monitoring_rules_file=str(tmp_path / "mesh-alerts.rules.yml"),
        _mesh_monitoring_ca_file=str(tmp_path / "ca.pem"),
        _mesh_monitoring_registry_token_file=str(tmp_path / "registry.token"),
    )
    variables.update(overrides)
    return env.get_template(template).render(**variables)


def check_config(tmp_path: Path, rules: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Render prometheus.yml beside `rules` (and the files it names) -> (it, promtool's verdict)."""
    (tmp_path / "mesh-alerts.rules.yml").write_text(rules)
    (tmp_path / "ca.pem").write_text("")
    (tmp_path / "registry.token").write_text("t")
    config = tmp_path / "prometheus.yml"
    config.write_text(render("prometheus.yml.j2", tmp_path))
    done = subprocess.run(
        [promtool(), "check", "config", str(config)], capture_output=True, text=True, check=False
    )
    return config, done


def test_prometheus_config_passes_promtool_and_names_every_target(tmp_path: Path) -> None:
    config, done = check_config(tmp_path, render_rules())
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = {job["job_name"]: job for job in yaml.safe_load(config.read_text())["scrape_configs"]}
    assert set(jobs) == {"mesh_agent", "mesh_registry", "mesh_haproxy"}
    assert [c["targets"] for c in jobs["mesh_agent"]["static_configs"]] == [
        ["10.0.0.11:8080"],
        ["10.0.0.12:9090"],
    ]
    assert jobs["mesh_agent"]["scheme"] == "https"
    assert jobs["mesh_registry"]["authorization"] == {
        "credentials_file": str(tmp_path / "registry.token")
    }
    assert "scheme" not in jobs["mesh_haproxy"]  # HAProxy's exporter frontend is plain HTTP
    assert jobs["mesh_haproxy"]["static_configs"] == [
        {"targets": ["10.0.0.10:8404"], "labels": {"host": "lb1"}}
    ]


def test_a_bad_rule_file_fails_the_config_check(tmp_path: Path) -> None:
    broken = "groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: up ==\n"
    _, done = check_config(tmp_path, broken)
    assert done.returncode != 0


def test_alertmanager_routes_every_alert_to_the_webhook(tmp_path: Path) -> None:
    routed = yaml.safe_load(
        render(
            "alertmanager.yml.j2", tmp_path, mesh_monitoring_webhook_url="http://10.0.0.1:9999/x"
        )
    )
    assert routed["route"]["receiver"] == "mesh"
    assert routed["receivers"] == [
        {
            "name": "mesh",
            "webhook_configs": [{"url": "http://10.0.0.1:9999/x", "send_resolved": True}],
        }
    ]
    assert yaml.safe_load(render("alertmanager.yml.j2", tmp_path))["receivers"] == [
        {"name": "mesh"}
    ]
