"""The roles' templates render what the runtime and HAProxy read back unchanged."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import jinja2
import pytest

from mcp_mesh_sdk.envfile import parse_env_text

ROLES = Path(__file__).resolve().parents[2] / "roles"
TRICKY = "p\"a$s\\w'd `x` #not-a-comment ${HOME}"


def comment(text: str) -> str:
    return "#\n# " + text + "\n#"


def render(role: str, template: str, variables: dict[str, Any]) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLES / role / "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["comment"] = comment
    env.filters["combine"] = lambda base, extra: {**base, **extra}
    return env.get_template(template).render(ansible_managed="Ansible managed", **variables)


def agent_env(values: dict[str, str], secrets: dict[str, str], extra: dict[str, str]) -> str:
    """agent.env as mesh_common's env template renders the agent role's entry."""
    return render(
        "mesh_common",
        "mesh-service.env.j2",
        {
            "mesh_common_file": {
                "service": "agent",
                "read_by": "mcp-mesh-sdk.service",
                "dest": "/etc/mcp-mesh/agent.env",
                "mode": "0640",
                "env": values,
                "env_extra": extra,
                "secret_env": secrets,
            },
            "mesh_common_group": "mcp-mesh",
        },
    )


def test_env_file_values_read_back_exactly_even_with_quotes_and_dollars() -> None:
    text = agent_env(
        {"AGENT_NAME": "agent1", "SECURITY_CONTEXT": TRICKY},
        {"MCP_MESH_TOKEN": "tok-en_1", "DATABASE_URL": TRICKY},
        {},
    )
    assert parse_env_text(text) == {
        "AGENT_NAME": "agent1",
        "SECURITY_CONTEXT": TRICKY,
        "MCP_MESH_TOKEN": "tok-en_1",
        "DATABASE_URL": TRICKY,
    }


def test_empty_secrets_are_left_out_and_extra_variables_override() -> None:
    text = agent_env(
        {"LOG_LEVEL": "INFO", "HEALTH_INTERVAL": "30"},
        {"MCP_MESH_TOKEN": "t", "DATABASE_URL": ""},
        {"HEALTH_INTERVAL": "abc"},
    )
    values = parse_env_text(text)
    assert values == {"LOG_LEVEL": "INFO", "HEALTH_INTERVAL": "abc", "MCP_MESH_TOKEN": "t"}
    assert text.count("HEALTH_INTERVAL=") == 1


def haproxy_config(servers: list[dict[str, Any]], sticky: bool = True) -> str:
    variables: dict[str, Any] = {
        name: value
        for name, value in _defaults("mesh_loadbalancer").items()
        if name.startswith("mesh_loadbalancer_")
    }
    variables.update(
        mesh_loadbalancer_sticky_sessions=sticky,
        _mesh_loadbalancer_backend="mcp_mesh_agents",
        _mesh_loadbalancer_servers=servers,
    )
    return render("mesh_loadbalancer", "haproxy.cfg.j2", variables)


def _defaults(role: str) -> dict[str, Any]:
    import yaml

    data: dict[str, Any] = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())
    return data


SERVERS = [
    {"inventory_hostname": "agent1", "ansible_host": "10.0.0.11"},
    {"inventory_hostname": "agent2", "ansible_host": "10.0.0.12", "mesh_agent_port": 9090},
]


def test_haproxy_has_one_checked_server_per_agent() -> None:
    config = haproxy_config(SERVERS)
    assert "    server agent1 10.0.0.11:8080\n" in config
    assert "    server agent2 10.0.0.12:9090\n" in config
    assert "http-check send meth GET uri /ready" in config
    assert (
        "default-server weight 100 check inter 2000 fastinter 1000 downinter 2000 fall 2 rise 2"
        in config
    )  # weight 100: a canary can take 25% of it
    assert "option redispatch" in config and "retries 3" in config
    assert "stats socket /run/haproxy/admin.sock mode 660 level admin" in config


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed here")
@pytest.mark.parametrize("sticky", [True, False])
def test_haproxy_accepts_the_rendered_config(tmp_path: Path, sticky: bool) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy_config(SERVERS, sticky=sticky))
    check = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
