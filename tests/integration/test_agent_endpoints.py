"""The real agent process: its HTTP endpoints, as load balancers and Prometheus see them."""

from __future__ import annotations

from datetime import datetime

import pytest
from conftest import AGENT_TOKEN, RunningAgent, wait_until
from prometheus_client.parser import text_string_to_metric_families

from mcp_mesh_sdk import __version__

pytestmark = pytest.mark.integration


def test_health_reports_status_version_uptime_and_time(agent: RunningAgent) -> None:
    reply = agent.get("/health")
    assert reply.status == 200
    body = reply.json()
    assert body["version"] == __version__
    assert body["status"] == "degraded"  # no registry listens: serving in fallback mode
    assert body["uptime_seconds"] > 0
    assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None


def test_ready_and_livez_answer_200(agent: RunningAgent) -> None:
    assert agent.get("/ready").json() == {"status": "ready"}
    live = agent.get("/livez")
    assert (live.status, live.json()) == (200, {"status": "alive"})


def test_detailed_health_has_every_component_check(agent: RunningAgent) -> None:
    body = agent.get("/health/detailed").json()
    checks = body["checks"]
    assert checks["file_operations"]["status"] == "ok"
    assert checks["file_operations"]["readable"] and checks["file_operations"]["writable"]
    assert checks["registry"]["registered"] is False
    assert "ConnectError" in checks["registry"]["error"]
    for figure in ("cpu_percent", "memory_percent", "disk_usage_percent", "load_average"):
        assert figure in checks["system"]
    assert checks["mcp"]["loaded"] is True
    assert any(error.startswith("registry:") for error in body["errors"])


def test_missing_base_directory_makes_the_agent_unhealthy_and_unready(
    agent_env: dict[str, str], start_agent, tmp_path
) -> None:
    agent_env["BASE_DIRECTORY"] = str(tmp_path / "absent")
    agent = start_agent(agent_env, wait_path="/livez")
    assert wait_until(lambda: agent.get("/ready").json()["reason"] != "starting")
    ready = agent.get("/ready")
    assert ready.status == 503
    assert ready.json()["reason"] == "unhealthy"
    assert "does not exist" in ready.json()["errors"][0]
    assert agent.get("/health").status == 503
    detailed = agent.get("/health/detailed")
    assert detailed.status == 503
    assert detailed.json()["checks"]["file_operations"]["status"] == "fail"


def test_request_id_is_echoed_or_generated(agent: RunningAgent) -> None:
    given = agent.get("/health", headers={"X-Request-ID": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42"
    generated = agent.get("/health").headers["x-request-id"]
    assert len(generated) == 32 and generated != "trace-42"


def test_metrics_parse_as_prometheus_text(agent: RunningAgent) -> None:
    agent.get("/health")
    reply = agent.get("/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(reply.text)}
    for name in (
        "mcp_mesh_agent_http_requests",
        "mcp_mesh_agent_http_request_duration_seconds",
        "mcp_mesh_agent_ready",
        "process_resident_memory_bytes",
    ):
        assert name in families, name
    health_requests = [
        sample.value
        for sample in families["mcp_mesh_agent_http_requests"].samples
        if sample.labels.get("route") == "health" and sample.name.endswith("_total")
    ]
    assert health_requests and health_requests[0] >= 1
    ready = families["mcp_mesh_agent_ready"].samples[0].value
    assert ready == 1


def test_metrics_in_the_spec_json_shape_on_request(agent: RunningAgent) -> None:
    reply = agent.get("/metrics", headers={"Accept": "application/json"})
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert {"counters", "gauges", "histograms", "operations", "system"} <= set(body)
    assert "memory_percent" in body["system"]
    assert any(key.startswith("mcp_mesh_agent_http_requests_total{") for key in body["counters"])


def test_security_summary_needs_the_token(agent: RunningAgent) -> None:
    assert agent.get("/security/summary").status == 401
    reply = agent.get("/security/summary", headers={"Authorization": f"Bearer {AGENT_TOKEN}"})
    assert reply.status == 200
    summary = reply.json()
    assert summary["window_minutes"] == 60
    assert summary["events_by_type"] == {"unauthorized_access": 1}  # the refused call above


def test_logs_are_json_lines_with_request_ids(agent: RunningAgent) -> None:
    agent.get("/security/summary", headers={"X-Request-ID": "audit-7"})  # logs a security event
    import json

    lines = [json.loads(line) for line in agent.service.log().splitlines() if line.startswith("{")]
    event = next(line for line in lines if line.get("request_id") == "audit-7")
    for key in ("timestamp", "level", "logger", "message", "module", "function", "line"):
        assert key in event
    assert AGENT_TOKEN not in agent.service.log()
