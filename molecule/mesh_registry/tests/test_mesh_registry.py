"""mesh_registry alone on a fresh host (one replica on SQLite): what the agents and an operator
notice."""

from __future__ import annotations

import ssl
from typing import Any

from conftest import assert_runs_and_listens, https_call

from mcp_mesh_sdk import __version__

UNIT = "mcp-mesh-registry.service"
PORT = 8000


def test_the_registry_runs_enabled_and_listens(host: Any) -> None:
    assert_runs_and_listens(host, UNIT, f"tcp://0.0.0.0:{PORT}")


def test_its_probes_answer_over_tls_with_this_release(
    lab_vars: dict[str, Any], tls_context: ssl.SSLContext
) -> None:
    base = f"https://{lab_vars['ansible_host']}:{PORT}"
    status, health = https_call(tls_context, f"{base}/health")
    assert (status, health["version"]) == (200, __version__)
    status, ready = https_call(tls_context, f"{base}/ready")
    assert (status, ready) == (200, {"ready": True})


def test_listing_agents_needs_the_registry_token(
    lab_vars: dict[str, Any], tls_context: ssl.SSLContext
) -> None:
    url = f"https://{lab_vars['ansible_host']}:{PORT}/agents"
    assert https_call(tls_context, url)[0] == 401
    assert https_call(tls_context, url, token="not-the-token")[0] == 401
    status, listed = https_call(tls_context, url, token=str(lab_vars["mesh_registry_token"]))
    assert status == 200
    assert listed == {"agents": []}  # a fresh registry: no agent has registered


def test_it_keeps_its_state_in_sqlite_and_its_env_file_private(host: Any) -> None:
    env = host.file("/etc/mcp-mesh/registry.env")
    assert (env.user, env.group, env.mode) == ("root", "mcp-mesh", 0o640)
    assert not env.contains("DATABASE_URL=.")  # no PostgreSQL: the SQLite file below
    database = host.file("/var/lib/mcp-mesh/registry.db")
    assert database.is_file
    assert database.user == "mcp-mesh"
