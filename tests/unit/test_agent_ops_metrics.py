"""The figures the fleet's alert rules read from the agent's /metrics: the newest backup's
time and the served certificate's expiry."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from mcp_mesh_sdk.agent.ops_metrics import newest_backup_time
from mcp_mesh_sdk.agent.service import Agent
from mcp_mesh_sdk.backup.create import archive_name
from mcp_mesh_sdk.certificates import CertificateExpiry
from mcp_mesh_sdk.config import load_agent_config
from tests.tlsfixtures import Authority

BACKUP_METRIC = "mcp_mesh_agent_backup_last_success_timestamp_seconds"
EXPIRY_METRIC = "mcp_mesh_agent_tls_certificate_expiry_timestamp_seconds"


def when(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_the_newest_archive_by_the_time_its_name_carries(tmp_path: Path) -> None:
    older = tmp_path / archive_name("agent1", when("2026-11-28T02:00:00"))
    newer = tmp_path / archive_name("agent1", when("2026-11-29T02:00:00.250"))
    for path in (newer, older):  # the older one written last: mtimes do not decide
        path.write_bytes(b"x")
    (tmp_path / "mcp-mesh-agent1-unfinished.tmp").write_bytes(b"x")  # not an archive
    (tmp_path / "notes.txt").write_bytes(b"x")
    assert newest_backup_time(tmp_path) == when("2026-11-29T02:00:00.250").timestamp()


def test_an_archive_whose_name_has_no_time_counts_by_its_mtime(tmp_path: Path) -> None:
    renamed = tmp_path / "mcp-mesh-by-hand.tar.gz.age"
    renamed.write_bytes(b"x")
    os.utime(renamed, (1_700_000_000, 1_700_000_000))
    assert newest_backup_time(tmp_path) == 1_700_000_000


def test_no_archive_or_no_directory_is_none(tmp_path: Path) -> None:
    assert newest_backup_time(tmp_path) is None
    assert newest_backup_time(tmp_path / "missing") is None


def test_certificate_expiry_follows_a_renewal(tmp_path: Path) -> None:
    authority = Authority.create()
    short = authority.issue(days=3)
    cert_file = short.write_combined(tmp_path / "agent.pem")
    expiry = CertificateExpiry(cert_file)
    assert expiry.read() == short.cert.not_valid_after_utc.timestamp()
    renewed = authority.issue(days=90)
    replacement = renewed.write_combined(tmp_path / "agent.pem.new")
    replacement.replace(cert_file)
    assert expiry.read() == renewed.cert.not_valid_after_utc.timestamp()
    cert_file.write_text("not a certificate")
    assert expiry.read() is None


def _scrape(agent: Agent) -> dict[str, float]:
    text = agent.metrics_text().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in (BACKUP_METRIC, EXPIRY_METRIC)
    }


def test_metrics_carry_the_newest_backup_and_the_certificate_expiry(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    issued = Authority.create().issue(days=20)
    cert_file = issued.write_combined(tmp_path / "agent.pem")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(b"")
    env = {
        "MCP_MESH_TOKEN": "unit-token-0123456789abcdef",
        "MESH_REGISTRY_URL": "https://127.0.0.1:9",
        "MCP_MESH_STATE_DIR": str(tmp_path / "state"),
        "MCP_MESH_BACKUP_DIR": str(backups),
        "MCP_MESH_TLS_CERT_FILE": str(cert_file),
        "MCP_MESH_TLS_CA_FILE": str(Authority.create().write(ca_file)),
    }
    agent = Agent(load_agent_config(env))
    assert _scrape(agent) == {
        BACKUP_METRIC: 0.0,  # no backup yet: an alert on the backup's age fires
        EXPIRY_METRIC: issued.cert.not_valid_after_utc.timestamp(),
    }
    (backups / archive_name("agent1", when("2026-11-30T03:00:00"))).write_bytes(b"x")
    assert _scrape(agent)[BACKUP_METRIC] == when("2026-11-30T03:00:00").timestamp()


def test_plain_http_reports_no_certificate(tmp_path: Path) -> None:
    env = {
        "MCP_MESH_TOKEN": "unit-token-0123456789abcdef",
        "MCP_MESH_STATE_DIR": str(tmp_path / "state"),
        "MCP_MESH_BACKUP_DIR": str(tmp_path),
    }
    assert _scrape(Agent(load_agent_config(env)))[EXPIRY_METRIC] == 0.0
