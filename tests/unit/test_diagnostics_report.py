"""The fleet report playbooks/diagnostics.yml writes, rendered from gathered results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mesh_ops.diagnostics_report import build_report, main, render_markdown


def healthy_host(version: str = "1.2.3", disk: float = 22.0) -> dict[str, Any]:
    diagnose = {
        "status": "healthy",
        "system": {"cpu_percent": 3.5, "memory_percent": 41.0},
        "disks": [{"paths": ["/"], "usage_percent": disk}, {"paths": ["/x"], "usage_percent": 5.0}],
        "issues": [],
    }
    return {
        "diagnose": {"rc": 0, "stdout": json.dumps(diagnose), "stderr": ""},
        "incidents": {"rc": 0, "stdout": json.dumps({"incidents": []}), "stderr": ""},
        "service": {"ActiveState": "active", "SubState": "running", "NRestarts": "0"},
        "journal": [],
        "health": {"status": 200, "json": {"status": "healthy", "version": version}},
        "ready": {"status": 200},
    }


def gathered(**hosts: dict[str, Any] | None) -> dict[str, Any]:
    return {"generated_at": "2026-01-01T00:00:00Z", "hosts": hosts}


def test_healthy_fleet_lists_every_host_without_issues() -> None:
    report = build_report(gathered(agent1=healthy_host(), agent2=healthy_host()))
    assert report["hosts_with_issues"] == []
    row = report["hosts"][0]
    assert (row["host"], row["version"], row["state"], row["ready"]) == (
        "agent1",
        "1.2.3",
        "active",
        True,
    )
    assert row["disk_percent"] == 22.0  # the fullest disk
    markdown = render_markdown(report)
    assert "| agent1 | 1.2.3 | active | yes | 3.5% | 41.0% | 22.0% | 0 |" in markdown
    assert "| agent2 |" in markdown
    assert "## " not in markdown  # no section for hosts without issues


def test_diagnose_issues_a_stopped_service_and_restarts_are_reported() -> None:
    sick = healthy_host(disk=97.0)
    report_of_diagnose = json.loads(sick["diagnose"]["stdout"])
    report_of_diagnose["issues"] = ["High disk usage: 97.0% on the disk holding /data"]
    sick["diagnose"] = {"rc": 1, "stdout": json.dumps(report_of_diagnose), "stderr": ""}
    sick["service"] = {"ActiveState": "failed", "SubState": "failed", "NRestarts": "3"}
    sick["journal"] = [
        json.dumps({"__REALTIME_TIMESTAMP": "1767225600000000", "MESSAGE": "boom"}),
        json.dumps({"MESSAGE": [104, 105]}),  # journald's form of a non-UTF-8 message
        "not json",
    ]
    report = build_report(gathered(agent1=healthy_host(), agent2=sick))
    assert report["hosts_with_issues"] == ["agent2"]
    issues = report["hosts"][1]["issues"]
    assert "High disk usage: 97.0% on the disk holding /data" in issues
    assert "mcp-mesh-sdk.service is failed (failed)" in issues
    assert any("3 time(s)" in issue for issue in issues)
    markdown = render_markdown(report)
    assert "## agent2" in markdown and "## agent1" not in markdown
    assert "2026-01-01T00:00:00+00:00 boom" in markdown
    assert " hi" in markdown


def test_open_incidents_are_issues() -> None:
    host = healthy_host()
    incident = {"id": "INC-1", "severity": "P2_High", "title": "High Error Rate: read_file"}
    host["incidents"]["stdout"] = json.dumps({"incidents": [incident]})
    row = build_report(gathered(agent1=host))["hosts"][0]
    assert row["issues"] == ["open incident INC-1 (P2_High): High Error Rate: read_file"]
    assert row["incidents"] == [incident]


def test_unreachable_host_and_unreadable_output_are_issues_not_crashes() -> None:
    broken = healthy_host()
    broken["diagnose"] = {"rc": 2, "stdout": "", "stderr": "error: bad env file"}
    report = build_report(gathered(agent1=None, agent2=broken))
    assert report["hosts"][0]["state"] == "unreachable"
    assert report["hosts"][0]["issues"] == ["host did not answer over SSH"]
    assert report["hosts"][1]["issues"] == [
        "mcp-mesh-sdk diagnose did not report (exit 2: error: bad env file)"
    ]
    assert "| agent1 | - | unreachable | no | - | - | - | 1 |" in render_markdown(report)


def test_main_writes_json_and_markdown(tmp_path: Path, capsys: Any) -> None:
    source = tmp_path / "gathered.json"
    source.write_text(json.dumps(gathered(agent1=None)))
    assert main([str(source), str(tmp_path / "reports")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["hosts_with_issues"] == ["agent1"]
    assert json.loads(Path(result["json"]).read_text())["hosts"][0]["host"] == "agent1"
    assert Path(result["markdown"]).read_text().startswith("# Fleet diagnostics")


def test_main_refuses_bad_input_with_a_message(tmp_path: Path, capsys: Any) -> None:
    source = tmp_path / "gathered.json"
    source.write_text("{not json")
    assert main([str(source), str(tmp_path)]) == 2
    assert "cannot render" in capsys.readouterr().err


def test_ignored_issues_are_shown_but_do_not_count() -> None:
    busy = healthy_host()
    diagnose = json.loads(busy["diagnose"]["stdout"])
    diagnose["issues"] = ["High CPU usage: 99.0%", "Cannot access data path: /data"]
    busy["diagnose"]["stdout"] = json.dumps(diagnose)
    only_cpu = healthy_host()
    diagnose["issues"] = ["High CPU usage: 99.0%"]
    only_cpu["diagnose"]["stdout"] = json.dumps(diagnose)
    report = build_report(gathered(agent1=busy, agent2=only_cpu), ignore=["^High CPU usage"])
    assert report["hosts_with_issues"] == ["agent1"]
    assert report["hosts"][0]["issues"] == ["Cannot access data path: /data"]
    assert "- (ignored) High CPU usage: 99.0%" in render_markdown(report)


def test_main_refuses_a_bad_ignore_list(tmp_path: Path, capsys: Any) -> None:
    source = tmp_path / "gathered.json"
    source.write_text(json.dumps(gathered(agent1=None)))
    assert main([str(source), str(tmp_path), '["("]']) == 2
    assert main([str(source), str(tmp_path), '"not a list"']) == 2
    assert "cannot render" in capsys.readouterr().err
