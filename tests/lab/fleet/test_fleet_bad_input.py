"""Bad input stops site.yml before a live file changes, names the variable; the agent runs on."""

from __future__ import annotations

from typing import Any

import pytest

HOST = "agent1"
ENV_FILE = "/etc/mcp-mesh/agent.env"

BAD_INPUTS = [
    pytest.param(["-e", "mesh_agent_port=70000"], "mesh_agent_port", id="port-out-of-range"),
    pytest.param(
        ["-e", "mesh_agent_health_interval=abc"], "mesh_agent_health_interval", id="interval-abc"
    ),
    pytest.param(
        ["-e", "mesh_agent_log_level=LOUD"], "mesh_agent_log_level", id="unknown-log-level"
    ),
    pytest.param(
        ["-e", "mesh_agent_base_directory=relative/data"],
        "mesh_agent_base_directory",
        id="relative-base-directory",
    ),
    pytest.param(
        ["-e", '{"mesh_agent_env_extra": {"HEALTH_INTERVAL": "abc"}}'],
        "HEALTH_INTERVAL",
        id="env-file-rejected-by-check-config",
    ),
]


def service_state(host: Any) -> tuple[str, str]:
    """(checksum of agent.env, main PID of the agent): both stay when the run fails."""
    checksum = host.check_output(f"sha256sum {ENV_FILE}").split()[0]
    pid = host.check_output("systemctl show -p MainPID --value mcp-mesh-sdk.service")
    return checksum, pid


@pytest.mark.parametrize(("args", "named"), BAD_INPUTS)
def test_bad_input_fails_early_and_the_agent_keeps_running(
    fleet: Any, lab_host: Any, args: list[str], named: str
) -> None:
    host = lab_host(HOST)
    before = service_state(host)
    run = fleet.playbook("--limit", HOST, *args)
    assert run.returncode != 0, run.stdout[-3000:]
    assert named in run.stdout + run.stderr, run.stdout[-3000:]
    assert "Traceback" not in run.stdout + run.stderr
    assert service_state(host) == before, "agent.env changed or the agent restarted"
    assert host.service("mcp-mesh-sdk.service").is_running
    for token in fleet.tokens.values():
        assert token not in run.stdout + run.stderr
