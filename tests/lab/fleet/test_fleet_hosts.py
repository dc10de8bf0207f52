"""What site.yml leaves on each host: account, paths and modes, units, hardening, logs.

Each test runs once per lab host (`lab_host_name`) or agent (`lab_agent_name`); in the lab every
host belongs to the fleet (lb1 runs the load balancer and the registry).
"""

from __future__ import annotations

import json
import re
from typing import Any

from mcp_mesh_sdk.constants import (
    AGENT_ENV,
    AGENT_PORT,
    AGENT_UNIT,
    BACKUP_DIR,
    CLI,
    CONFIG_DIR,
    CURRENT_RELEASE,
    INSTALL_DIR,
    REGISTRY_ENV,
    REGISTRY_UNIT,
    STATE_DIR,
    SYSTEMD_DIR,
)

MAX_EXPOSURE = 1.5

# path, owner, group, mode: on every host of the fleet
COMMON_PATHS = [
    (CONFIG_DIR, "root", "mcp-mesh", 0o750),
    (STATE_DIR, "mcp-mesh", "mcp-mesh", 0o750),
    (BACKUP_DIR, "root", "mcp-mesh", 0o750),
    (INSTALL_DIR, "root", "root", 0o755),
    (INSTALL_DIR / "releases", "root", "root", 0o755),
]
AGENT_PATHS = [
    (STATE_DIR / "data", "mcp-mesh", "mcp-mesh", 0o750),
    (AGENT_ENV, "root", "mcp-mesh", 0o640),
    (SYSTEMD_DIR / AGENT_UNIT, "root", "root", 0o644),
]
REGISTRY_PATHS = [
    (REGISTRY_ENV, "root", "mcp-mesh", 0o640),
    (SYSTEMD_DIR / REGISTRY_UNIT, "root", "root", 0o644),
]


def units_of(fleet: Any, host: str) -> list[str]:
    units = []
    if host in fleet.lab.groups["agents"]:
        units.append(AGENT_UNIT)
    if host in fleet.lab.groups["registry"]:
        units.append(REGISTRY_UNIT)
    return units


def test_service_account_has_no_login_shell(fleet: Any, lab_host: Any, lab_host_name: str) -> None:
    user = lab_host(lab_host_name).user("mcp-mesh")
    assert user.exists
    assert user.shell in ("/usr/sbin/nologin", "/sbin/nologin")
    assert user.group == "mcp-mesh"
    assert user.uid < 1000, "mcp-mesh is not a system user"


def test_every_path_has_its_owner_and_mode(fleet: Any, lab_host: Any, lab_host_name: str) -> None:
    expected = list(COMMON_PATHS)
    if lab_host_name in fleet.lab.groups["agents"]:
        expected += AGENT_PATHS
    if lab_host_name in fleet.lab.groups["registry"]:
        expected += REGISTRY_PATHS
    wrong = []
    for path, owner, group, mode in expected:
        file = lab_host(lab_host_name).file(str(path))
        found = (file.exists and file.user, file.exists and file.group, file.exists and file.mode)
        if found != (owner, group, mode):
            wrong.append(f"{path} is {found}, want {(owner, group, oct(mode))}")
    assert wrong == []


def test_current_release_is_the_deployed_version(
    fleet: Any, lab_host: Any, lab_host_name: str
) -> None:
    current = lab_host(lab_host_name).file(str(CURRENT_RELEASE))
    assert current.is_symlink
    assert current.linked_to == f"{INSTALL_DIR}/releases/{fleet.version}"
    version = lab_host(lab_host_name).check_output(f"{CLI} --version")
    assert version == f"mcp-mesh-sdk {fleet.version}"


def test_env_files_are_not_world_readable(fleet: Any, lab_host: Any, lab_host_name: str) -> None:
    for env in (AGENT_ENV, REGISTRY_ENV):
        file = lab_host(lab_host_name).file(str(env))
        if file.exists:
            assert file.mode & 0o007 == 0, f"{env} mode {oct(file.mode)}"


def test_the_journal_holds_no_secret(fleet: Any, lab_host: Any, lab_host_name: str) -> None:
    journal = lab_host(lab_host_name).check_output("journalctl --no-pager -o cat")
    for kind, token in fleet.tokens.items():
        assert token not in journal, f"the {kind} token is in the journal"


def test_units_are_enabled_and_running(fleet: Any, lab_host: Any, lab_host_name: str) -> None:
    units = units_of(fleet, lab_host_name)
    if lab_host_name in fleet.lab.groups["loadbalancer"]:
        units.append("haproxy.service")
    assert units, f"{lab_host_name} runs no unit of the fleet"
    for unit in units:
        service = lab_host(lab_host_name).service(unit)
        assert service.is_enabled and service.is_running, unit


def test_units_are_hardened_to_an_exposure_of_at_most_1_5(
    fleet: Any, lab_host: Any, lab_host_name: str
) -> None:
    exposures = {}
    for unit in units_of(fleet, lab_host_name):
        out = lab_host(lab_host_name).check_output(f"systemd-analyze security {unit} --no-pager")
        match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
        assert match, out[-500:]
        exposures[unit] = float(match.group(1))
    print(f"\nexposure: {exposures}")
    assert exposures and all(value <= MAX_EXPOSURE for value in exposures.values()), exposures


def test_agents_listen_on_their_port(lab_host: Any, lab_agent_name: str) -> None:
    assert lab_host(lab_agent_name).socket(f"tcp://0.0.0.0:{AGENT_PORT}").is_listening


def test_service_logs_in_the_journal_are_json(
    fleet: Any, lab_host: Any, lab_host_name: str
) -> None:
    for unit in units_of(fleet, lab_host_name):
        identifier = unit.removesuffix(".service")
        out = lab_host(lab_host_name).check_output(
            f"journalctl --no-pager -o json -u {unit} SYSLOG_IDENTIFIER={identifier} -n 50"
        )
        messages = [json.loads(line)["MESSAGE"] for line in out.splitlines() if line.strip()]
        assert messages, f"no log line from {unit}"
        for message in messages:
            record = json.loads(message)  # every line the service wrote is one JSON object
            assert {"timestamp", "level", "message"} <= record.keys()


def test_agents_deflate_backups_with_isal_from_the_offline_wheelhouse(
    fleet: Any, lab: Any, lab_host: Any, lab_agent_name: str
) -> None:
    """isal's wheel for the host's own Python (Debian 12's 3.11, 13's 3.13) reached its offline
    wheelhouse and loads there: backups deflate with ISA-L, not the zlib fallback."""
    python = CLI.parent / "python"
    probe = (
        "from mcp_mesh_sdk.backup.gzstream import engine; import sys; "
        "print(engine(1), *sys.version_info[:2])"
    )
    out = lab_host(lab_agent_name).check_output(f"{python} -c '{probe}'")
    distro = lab.distros.get(lab_agent_name)
    assert out.split()[0] == "isal", f"{lab_agent_name} ({distro}): {out}"
