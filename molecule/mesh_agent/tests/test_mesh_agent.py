"""mesh_agent alone on a fresh host: what an operator and a client of the agent notice."""

from __future__ import annotations

import ssl
from typing import Any

from conftest import assert_runs_and_listens, https_call

from mcp_mesh_sdk import __version__

UNIT = "mcp-mesh-sdk.service"
PORT = 8080


def test_the_agent_runs_enabled_and_listens(host: Any) -> None:
    assert_runs_and_listens(host, UNIT, f"tcp://0.0.0.0:{PORT}")


def test_it_answers_health_and_ready_over_tls_with_this_release(
    lab_vars: dict[str, Any], tls_context: ssl.SSLContext
) -> None:
    # the certificate names the host: verified against the lab's CA with the host's name
    address = lab_vars["ansible_host"]
    status, health = https_call(tls_context, f"https://{address}:{PORT}/health")
    assert status == 200
    assert health["version"] == __version__
    status, _ = https_call(tls_context, f"https://{address}:{PORT}/ready")
    assert status == 200


def test_mcp_refuses_a_client_without_a_token(
    lab_vars: dict[str, Any], tls_context: ssl.SSLContext
) -> None:
    status, _ = https_call(
        tls_context, f"https://{lab_vars['ansible_host']}:{PORT}/mcp", method="POST"
    )
    assert status == 401


def test_secrets_on_the_host_are_not_world_readable(host: Any) -> None:
    env = host.file("/etc/mcp-mesh/agent.env")
    assert (env.user, env.group, env.mode) == ("root", "mcp-mesh", 0o640)
    assert env.contains("^MCP_MESH_TOKEN=")
    backup_key = host.file("/etc/mcp-mesh/backup.key")
    assert (backup_key.user, backup_key.mode) == ("root", 0o600)


def test_backups_are_scheduled(host: Any) -> None:
    timer = host.service("mcp-mesh-backup.timer")
    assert timer.is_enabled
    assert timer.is_running
