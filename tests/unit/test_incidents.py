import json
import multiprocessing

import pytest

from mcp_mesh_sdk.cli import main
from mcp_mesh_sdk.incidents import IncidentDetector, IncidentStore

HEALTHY_OPS = {"read_file": {"error_rate": 0.05, "avg_duration_ms": 120.0}}
HEALTHY_SYSTEM = {"memory_percent": 50.0, "disk_usage_percent": 40.0}
FIELDS = {
    "id", "severity", "title", "description", "components", "actions", "status",
    "created_at", "resolved_at", "resolution", "cause",
}  # fmt: skip


def detect(tmp_path, operations=HEALTHY_OPS, system=HEALTHY_SYSTEM):
    return IncidentDetector(IncidentStore(tmp_path)).check(operations, system)


def test_healthy_metrics_open_nothing(tmp_path) -> None:
    assert detect(tmp_path) == []
    assert not (tmp_path / "incidents.jsonl").exists()


@pytest.mark.parametrize(
    ("operations", "system", "severity", "cause"),
    [
        ({"write_file": {"error_rate": 0.11}}, HEALTHY_SYSTEM, "P2_High", "error_rate:write_file"),
        ({"get": {"avg_duration_ms": 5001}}, HEALTHY_SYSTEM, "P3_Medium", "response_time:get"),
        ({}, {"memory_percent": 90.5}, "P2_High", "memory"),
        ({}, {"disk_usage_percent": 95.5}, "P1_Critical", "disk"),
    ],
)  # fmt: skip
def test_each_threshold_opens_its_incident(tmp_path, operations, system, severity, cause) -> None:
    [incident] = detect(tmp_path, operations, system)
    assert (incident.severity, incident.cause, incident.status) == (severity, cause, "open")
    [line] = (tmp_path / "incidents.jsonl").read_text().splitlines()
    assert set(json.loads(line)) == FIELDS


def test_client_errors_never_open_an_incident(tmp_path) -> None:
    from mcp_mesh_sdk.agent.monitoring import PerformanceMonitor

    monitor = PerformanceMonitor()
    for _ in range(30):  # every call a refusal or a missing file
        monitor.record("read_file", 0.001, outcome="client_error")
    for _ in range(8):
        monitor.record("write_file", 0.001)
    for _ in range(2):  # 20 % of write_file calls failed in the agent
        monitor.record("write_file", 0.001, outcome="server_error")
    opened = detect(tmp_path, monitor.all_stats(), HEALTHY_SYSTEM)
    assert [(i.cause, i.severity) for i in opened] == [("error_rate:write_file", "P2_High")]
    assert opened[0].description == "Error rate for write_file is 20.0% (server errors)"


def test_thresholds_are_exclusive(tmp_path) -> None:
    at_threshold = {"op": {"error_rate": 0.10, "avg_duration_ms": 5000.0}}
    assert detect(tmp_path, at_threshold, {"memory_percent": 90, "disk_usage_percent": 95}) == []


def test_an_open_cause_is_not_opened_again_until_resolved(tmp_path) -> None:
    hot = {"memory_percent": 99.0}
    [first] = detect(tmp_path, {}, hot)
    assert detect(tmp_path, {}, hot) == []
    store = IncidentStore(tmp_path)
    store.resolve(first.id, "restarted the agent")
    [second] = detect(tmp_path, {}, hot)
    assert second.id != first.id
    assert [i.status for i in store.all()] == ["resolved", "open"]
    assert store.all()[0].resolution == "restarted the agent"
    assert store.all()[0].resolved_at is not None


def _open_many(state_dir: str, prefix: str) -> None:
    detector = IncidentDetector(IncidentStore(state_dir))
    for n in range(25):
        detector.check({f"{prefix}{n}": {"error_rate": 0.5}}, {})


def test_two_writers_lose_nothing(tmp_path) -> None:
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_open_many, args=(str(tmp_path), p)) for p in "ab"]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
    assert [w.exitcode for w in writers] == [0, 0]
    assert len(IncidentStore(tmp_path).all()) == 50


def test_lines_that_do_not_parse_are_kept(tmp_path) -> None:
    (tmp_path / "incidents.jsonl").write_text("{broken\n")
    detect(tmp_path, {}, {"disk_usage_percent": 99})
    store = IncidentStore(tmp_path)
    assert store.unreadable_lines() == 1
    assert (tmp_path / "incidents.jsonl").read_text().startswith("{broken\n")


def test_cli_lists_and_resolves(tmp_path, capsys) -> None:
    [incident] = detect(tmp_path, {}, {"disk_usage_percent": 99})
    assert main(["incidents", "--json", "--state-dir", str(tmp_path)]) == 0
    listed = json.loads(capsys.readouterr().out)["incidents"]
    assert [i["id"] for i in listed] == [incident.id]
    assert main(["incidents", "resolve", incident.id, "--note", "cleaned /var/log",
                 "--state-dir", str(tmp_path)]) == 0  # fmt: skip
    assert "resolved" in capsys.readouterr().out
    assert main(["incidents", "--open", "--json", "--state-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["incidents"] == []


def test_cli_unknown_id_is_a_clear_error(tmp_path, capsys) -> None:
    code = main(["incidents", "resolve", "INC-nope", "--note", "x", "--state-dir", str(tmp_path)])
    assert code != 0
    assert "no incident with id 'INC-nope'" in capsys.readouterr().err


def test_cli_reads_the_state_dir_from_the_env_file(tmp_path, capsys) -> None:
    state = tmp_path / "state"
    detect(state, {}, {"memory_percent": 95})
    env_file = tmp_path / "agent.env"
    env_file.write_text(f"MCP_MESH_STATE_DIR={state}\nMCP_MESH_TOKEN=abcdefghijklmnopqrstuvwxyz\n")
    assert main(["incidents", "--env-file", str(env_file)]) == 0
    assert "High Memory Usage" in capsys.readouterr().out


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="chown needs root")
def test_files_keep_the_state_owner_when_root_writes_them(tmp_path) -> None:
    import os

    os.chown(tmp_path, 4321, 4321)  # the service's (dynamic) user owns the state directory
    [incident] = detect(tmp_path, {}, {"disk_usage_percent": 99})
    incidents = tmp_path / "incidents.jsonl"
    for path in (incidents, tmp_path / "incidents.jsonl.lock"):
        assert (path.stat().st_uid, path.stat().st_gid) == (4321, 4321)
    incidents.chmod(0o600)
    IncidentStore(tmp_path).resolve(incident.id, "done")  # e.g. an operator, as root
    assert incidents.stat().st_uid == 4321
    assert incidents.stat().st_mode & 0o777 == 0o600
