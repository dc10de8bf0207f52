"""The ops clients with TLS on: `release activate` plans https:// checks verified against the
env's CA, its host GETs and the canary's scrapes verify the server, a wrong CA is refused."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from test_serving_limits import serving

from mcp_mesh_sdk.canary import ScrapeError, fetch_metrics
from mcp_mesh_sdk.commands.release import _plan
from mcp_mesh_sdk.local_agent import local_agent
from mcp_mesh_sdk.release import SystemHost
from mcp_mesh_sdk.serving.tls import TlsSettings
from tests.tlsfixtures import Authority

TOKEN = "agent-token-value-0123456789"


def activate_args(tmp_path: Path, service: str, env_file: Path) -> argparse.Namespace:
    release = tmp_path / "install" / "releases" / "1.1.0"
    release.mkdir(parents=True, exist_ok=True)
    return argparse.Namespace(
        service=service, env_file=str(env_file), state_dir=tmp_path / "state",
        release_dir=release, undo_with=None, soak=0.0, timeout=5.0,
        skip_drain_delay=False, smoke=None,
    )  # fmt: skip


def test_release_activate_checks_a_tls_service_over_https_with_the_envs_ca(
    tmp_path: Path,
) -> None:
    agent_env = tmp_path / "agent.env"
    agent_env.write_text(
        f"MCP_MESH_TOKEN={TOKEN}\nMCP_MESH_PORT=8443\nMCP_MESH_TLS_CERT_FILE=/etc/t/server.pem\n"
        "MCP_MESH_TLS_CA_FILE=/etc/t/ca.pem\n"
    )
    plan = _plan(activate_args(tmp_path, "agent", agent_env))
    assert plan.url == "https://127.0.0.1:8443"
    assert plan.ca_file == Path("/etc/t/ca.pem")
    assert plan.smoke_target is not None
    assert plan.smoke_target.mcp_url == "https://127.0.0.1:8443/mcp"
    assert plan.smoke_target.ca_file == Path("/etc/t/ca.pem")

    registry_env = tmp_path / "registry.env"
    registry_env.write_text(
        f"MCP_MESH_REGISTRY_TOKEN={TOKEN}\nMCP_MESH_REGISTRY_TLS_CERT_FILE=/etc/t/server.pem\n"
    )
    plan = _plan(activate_args(tmp_path, "registry", registry_env))
    assert plan.url.startswith("https://127.0.0.1:") and plan.ca_file is None

    agent_env.write_text(f"MCP_MESH_TOKEN={TOKEN}\nMCP_MESH_PORT=8080\n")
    assert _plan(activate_args(tmp_path, "agent", agent_env)).url == "http://127.0.0.1:8080"


def test_local_agent_uses_https_with_the_ca_when_the_env_has_tls(tmp_path: Path) -> None:
    env = tmp_path / "agent.env"
    env.write_text(
        f"MCP_MESH_TOKEN={TOKEN}\nMCP_MESH_HOST=0.0.0.0\nMCP_MESH_PORT=9443\n"
        "MCP_MESH_TLS_CERT_FILE=/etc/t/server.pem\nMCP_MESH_TLS_CA_FILE=/etc/t/ca.pem\n"
    )
    agent = local_agent(env)
    assert (agent.base_url, agent.ca_file) == ("https://127.0.0.1:9443", Path("/etc/t/ca.pem"))


def test_host_gets_and_canary_scrapes_verify_the_server(tmp_path: Path) -> None:
    ca = Authority.create()
    pem = ca.issue().write_combined(tmp_path / "server.pem")
    ca_file = ca.write(tmp_path / "ca.pem")
    other = Authority.create("other").write(tmp_path / "other.pem")
    with serving(tls=TlsSettings(cert_file=pem)) as (port, _):
        url = f"https://127.0.0.1:{port}/"
        assert SystemHost(ca_file).get(url, 5.0) == (200, None)  # "hi" is no JSON
        assert SystemHost(other).get(url, 5.0) == (0, None)  # not verified: nothing answered
        assert fetch_metrics(url, 5.0, ca_file) == "hi"
        with pytest.raises(ScrapeError, match="certificate verify failed"):
            fetch_metrics(url, 5.0, other)
