"""The agent role's clients file: hashes only, checked before it is used, never shown."""

from __future__ import annotations

import hashlib
from pathlib import Path

import jinja2
import yaml

from mcp_mesh_sdk.agent.clients import parse_clients

ROLE = Path(__file__).resolve().parents[2] / "roles" / "mesh_agent"
TOKENS = {"alice": "a" * 40, "bob": "b" * 40}


def render(clients: list[dict[str, str]]) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLE / "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["comment"] = lambda text: "#\n# " + text + "\n#"
    env.filters["hash"] = lambda text, kind: hashlib.new(kind, text.encode()).hexdigest()
    return env.get_template("agent-clients.j2").render(
        ansible_managed="Ansible managed",
        mesh_agent_clients=clients,
        mesh_common_file={"dest": "/etc/mcp-mesh/agent-clients"},
    )


def test_the_clients_file_is_validated_never_shown_and_restarts_nothing() -> None:
    variables = yaml.safe_load((ROLE / "vars" / "main.yml").read_text(encoding="utf-8"))
    clients = variables["_mesh_agent_clients_file"]
    assert "check-config --clients-file %s" in clients["validate"]
    assert clients["secret"] is True  # mesh_files never shows a secret file's content
    assert clients["mode"] == "0640"
    # A config file of the service: written before agent.env, and not among the paths whose
    # change restarts the agent (the env file and the units): revoking a client drops no request.
    assert variables["_mesh_agent_service"]["config_files"] == ["{{ _mesh_agent_clients_file }}"]
    common = ROLE.parent / "mesh_common"
    configure = (common / "tasks" / "configure.yml").read_text()
    assert (
        "intersect([mesh_common_service.env_file.dest]) + _mesh_common_units_changed" in configure
    )
    units_changed = yaml.safe_load((common / "vars" / "main.yml").read_text())[
        "_mesh_common_units_changed"
    ]
    assert "intersect(mesh_common_service.units | map(attribute='dest'))" in units_changed


def test_the_rendered_file_holds_each_clients_hash_and_the_agent_reads_it() -> None:
    text = render([{"name": name, "token": token} for name, token in TOKENS.items()])
    for token in TOKENS.values():
        assert token not in text
    clients = parse_clients(text)
    assert sorted(clients.values()) == ["alice", "bob"]
    assert clients[hashlib.sha256(TOKENS["bob"].encode()).digest()] == "bob"
    assert parse_clients(render([])) == {}
    assert "deprecated shared token" in render([])


def test_every_agent_env_names_the_clients_file() -> None:
    variables = yaml.safe_load((ROLE / "vars" / "main.yml").read_text(encoding="utf-8"))
    env = variables["_mesh_agent_service"]["env_file"]["env"]
    assert env["MCP_MESH_CLIENTS_FILE"] == "{{ _mesh_agent_clients_file.dest }}"
