"""What site.yml leaves on each host: account, paths and modes, units, hardening, logs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

AGENT_UNIT = "mcp-mesh-sdk.service"
REGISTRY_UNIT = "mcp-mesh-registry.service"
MAX_EXPOSURE = 1.5

# path, owner, group, mode: on every host of the fleet
COMMON_PATHS = [
    ("/etc/mcp-mesh", "root", "mcp-mesh", 0o750),
    ("/var/lib/mcp-mesh", "mcp-mesh", "mcp-mesh", 0o750),
    ("/var/backups/mcp-mesh", "root", "mcp-mesh", 0o750),
    ("/opt/mcp-mesh", "root", "root", 0o755),
    ("/opt/mcp-mesh/releases", "root", "root", 0o755),
]
AGENT_PATHS = [
    ("/var/lib/mcp-mesh/data", "mcp-mesh", "mcp-mesh", 0o750),
    ("/etc/mcp-mesh/agent.env", "root", "mcp-mesh", 0o640),
    (f"/etc/systemd/system/{AGENT_UNIT}", "root", "root", 0o644),
]
REGISTRY_PATHS = [
    ("/etc/mcp-mesh/registry.env", "root", "mcp-mesh", 0o640),
    (f"/etc/systemd/system/{REGISTRY_UNIT}", "root", "root", 0o644),
]


def fleet_hosts(fleet: Any) -> list[str]:
    groups = fleet.lab.groups
    return sorted({*groups["agents"], *groups["registry"], *groups["loadbalancer"]})


def units_of(fleet: Any, host: str) -> list[str]:
    units = []
    if host in fleet.lab.groups["agents"]:
        units.append(AGENT_UNIT)
    if host in fleet.lab.groups["registry"]:
        units.append(REGISTRY_UNIT)
    return units


def test_service_account_has_no_login_shell(fleet: Any, lab_host: Any) -> None:
    for name in fleet_hosts(fleet):
        user = lab_host(name).user("mcp-mesh")
        assert user.exists, name
        assert user.shell in ("/usr/sbin/nologin", "/sbin/nologin"), name
        assert user.group == "mcp-mesh", name
        assert user.uid < 1000, f"{name}: mcp-mesh is not a system user"


def test_every_path_has_its_owner_and_mode(fleet: Any, lab_host: Any) -> None:
    wrong = []
    for name in fleet_hosts(fleet):
        expected = list(COMMON_PATHS)
        if name in fleet.lab.groups["agents"]:
            expected += AGENT_PATHS
        if name in fleet.lab.groups["registry"]:
            expected += REGISTRY_PATHS
        for path, owner, group, mode in expected:
            file = lab_host(name).file(path)
            found = (
                file.exists and file.user,
                file.exists and file.group,
                file.exists and file.mode,
            )
            if found != (owner, group, mode):
                wrong.append(f"{name}:{path} is {found}, want {(owner, group, oct(mode))}")
    assert wrong == []


def test_current_release_is_the_deployed_version(fleet: Any, lab_host: Any) -> None:
    for name in fleet_hosts(fleet):
        current = lab_host(name).file("/opt/mcp-mesh/current")
        assert current.is_symlink, name
        assert current.linked_to == f"/opt/mcp-mesh/releases/{fleet.version}", name
        version = lab_host(name).check_output(
            "/opt/mcp-mesh/current/venv/bin/mcp-mesh-sdk --version"
        )
        assert version == f"mcp-mesh-sdk {fleet.version}"


def test_env_files_are_not_world_readable(fleet: Any, lab_host: Any) -> None:
    for name in fleet_hosts(fleet):
        for env in ("agent.env", "registry.env"):
            file = lab_host(name).file(f"/etc/mcp-mesh/{env}")
            if file.exists:
                assert file.mode & 0o007 == 0, f"{name}:{env} mode {oct(file.mode)}"


def test_the_journal_holds_no_secret(fleet: Any, lab_host: Any) -> None:
    for name in fleet_hosts(fleet):
        journal = lab_host(name).check_output("journalctl --no-pager -o cat")
        for kind, token in fleet.tokens.items():
            assert token not in journal, f"{name}: the {kind} token is in the journal"


def test_units_are_enabled_and_running(fleet: Any, lab_host: Any) -> None:
    for name in fleet_hosts(fleet):
        for unit in units_of(fleet, name):
            service = lab_host(name).service(unit)
            assert service.is_enabled and service.is_running, f"{name}: {unit}"
    for name in fleet.lab.groups["loadbalancer"]:
        haproxy = lab_host(name).service("haproxy")
        assert haproxy.is_enabled and haproxy.is_running


def test_units_are_hardened_to_an_exposure_of_at_most_1_5(fleet: Any, lab_host: Any) -> None:
    exposures = {}
    for name in fleet_hosts(fleet):
        for unit in units_of(fleet, name):
            out = lab_host(name).check_output(f"systemd-analyze security {unit} --no-pager")
            match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
            assert match, out[-500:]
            exposures[f"{name}:{unit}"] = float(match.group(1))
    print(f"\nexposure: {exposures}")
    assert exposures and all(value <= MAX_EXPOSURE for value in exposures.values()), exposures


def test_agents_listen_on_8080(fleet: Any, lab_host: Any) -> None:
    for name in fleet.lab.groups["agents"]:
        assert lab_host(name).socket("tcp://0.0.0.0:8080").is_listening, name


@pytest.mark.parametrize("unit", [AGENT_UNIT, REGISTRY_UNIT])
def test_service_logs_in_the_journal_are_json(fleet: Any, lab_host: Any, unit: str) -> None:
    group = "agents" if unit == AGENT_UNIT else "registry"
    for name in fleet.lab.groups[group]:
        identifier = unit.removesuffix(".service")
        out = lab_host(name).check_output(
            f"journalctl --no-pager -o json -u {unit} SYSLOG_IDENTIFIER={identifier} -n 50"
        )
        messages = [json.loads(line)["MESSAGE"] for line in out.splitlines() if line.strip()]
        assert messages, f"{name}: no log line from {unit}"
        for message in messages:
            record = json.loads(message)  # every line the service wrote is one JSON object
            assert {"timestamp", "level", "message"} <= record.keys()
