"""The monitoring role's alert rules, rendered with the role's defaults, pass `promtool check
rules` and their unit tests (tests/monitoring/mesh-alerts.test.yml, `promtool test rules`), in
which every rule has series that fire it and series that must not.

promtool is Debian's (`make deps` unpacks it into .cache/promtool; MESH_PROMTOOL overrides)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "mesh_monitoring"
TEMPLATE = ROLE / "templates" / "mesh-alerts.rules.yml.j2"
RULE_TESTS = ROOT / "tests" / "monitoring" / "mesh-alerts.test.yml"
RULES_NAME = "mesh-alerts.rules.yml"  # what the rule tests name in rule_files
_HEADER = re.compile(r"(\w+):\s*'([^']*)'")
_LABEL = re.compile(r'(instance|agent_name|server)="([^"]+)"')


def promtool() -> str:
    path = os.environ.get("MESH_PROMTOOL") or str(ROOT / ".cache" / "promtool" / "promtool")
    if not Path(path).is_file():
        pytest.fail(f"no promtool at {path}: `make deps` (or `make promtool`) unpacks it")
    return path


def render_rules(overrides: dict[str, Any] | None = None) -> str:
    """The template as the role renders it: its `#jinja2:` header sets the markers."""
    header, body = TEMPLATE.read_text(encoding="utf-8").split("\n", 1)
    assert header.startswith("#jinja2:"), "the rules template must set its own markers"
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        **dict(_HEADER.findall(header)),  # type: ignore[arg-type]
    )
    env.filters["comment"] = lambda text: f"# {text}"
    variables = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    variables.update(overrides or {}, ansible_managed="Ansible managed")
    return env.from_string(body).render(**variables)


def run_rule_tests(tmp_path: Path, overrides: dict[str, Any] | None = None) -> str:
    (tmp_path / RULES_NAME).write_text(render_rules(overrides), encoding="utf-8")
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    done = subprocess.run(
        [promtool(), "test", "rules", RULE_TESTS.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    return done.stdout + done.stderr if done.returncode else ""


def test_the_rules_pass_promtool_check(tmp_path: Path) -> None:
    rules = tmp_path / RULES_NAME
    rules.write_text(render_rules(), encoding="utf-8")
    done = subprocess.run(
        [promtool(), "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rule_unit_tests_pass(tmp_path: Path) -> None:
    assert run_rule_tests(tmp_path) == ""


@pytest.mark.parametrize(
    ("variable", "value", "alert"),
    [
        ("mesh_monitoring_alert_error_rate", 0.25, "MeshAgentHighErrorRate"),
        ("mesh_monitoring_alert_backup_max_age_hours", 48, "MeshBackupTooOld"),
        ("mesh_monitoring_alert_disk_critical_percent", 98, "MeshHostDiskFull"),
    ],
)
def test_a_threshold_from_the_inventory_changes_what_fires(
    tmp_path: Path, variable: str, value: object, alert: str
) -> None:
    failures = run_rule_tests(tmp_path, {variable: value})
    assert f"alertname: {alert}," in failures
    assert set(re.findall(r"alertname: (\w+),", failures)) == {alert}


def _alert_names() -> list[str]:
    rules = yaml.safe_load(render_rules())
    return [rule["alert"] for group in rules["groups"] for rule in group["rules"]]


def test_every_rule_has_a_case_that_fires_and_one_that_must_not() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in tests:
        subjects = {m for s in case["input_series"] for m in _LABEL.findall(s["series"])}
        for check in case["alert_rule_test"]:
            name, expected = check["alertname"], check.get("exp_alerts") or []
            fired = {
                (key, value)
                for alert in expected
                for key, value in alert["exp_labels"].items()
                if key in ("instance", "agent_name", "server")
            }
            if expected:
                fires.add(name)
            if not expected or subjects - fired - _bystanders(subjects, fired):
                quiet.add(name)
    names = set(_alert_names())
    assert names - fires == set(), "rules no test fires"
    assert names - quiet == set(), "rules no test shows quiet"


def _bystanders(
    subjects: set[tuple[str, str]], fired: set[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Labels of another kind than the alert carries (e.g. the instance of a registry series
    when the alert is per agent_name): not a subject of that alert."""
    kinds = {key for key, _ in fired}
    return {subject for subject in subjects if subject[0] not in kinds}
