"""A secret full of shell and systemd specials reaches the agent's environment byte for byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HOST = "agent1"
TRICKY = "p\"a$s\\w'd `x` #not-a-comment ${HOME} $HOME; exit 1"


def agent_environment(host: Any) -> dict[str, str]:
    pid = host.check_output("systemctl show -p MainPID --value mcp-mesh-sdk.service")
    raw = host.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ")
    return dict(line.split("=", 1) for line in raw.splitlines() if "=" in line)


def test_special_characters_survive_the_env_file(fleet: Any, lab_host: Any, tmp_path: Path) -> None:
    extra = tmp_path / "tricky.json"
    extra.write_text(json.dumps({"mesh_agent_database_url": TRICKY}))
    host = lab_host(HOST)
    try:
        run = fleet.playbook("--limit", HOST, "-e", f"@{extra}")
        assert run.returncode == 0, run.stdout[-4000:]
        assert TRICKY not in run.stdout + run.stderr
        assert agent_environment(host)["DATABASE_URL"] == TRICKY
    finally:
        restored = fleet.playbook("--limit", HOST)
    assert restored.returncode == 0, restored.stdout[-4000:]
    assert "DATABASE_URL" not in agent_environment(host)
