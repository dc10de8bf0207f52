"""Scheduled backups: the timer is enabled, its service writes a verified backup, and prune
keeps exactly mesh_agent_backup_keep archives."""

from __future__ import annotations

import json
from typing import Any

HOST = "agent1"
BACKUP_DIR = "/var/backups/mcp-mesh"
SDK = "/opt/mcp-mesh/current/venv/bin/mcp-mesh-sdk"
KEEP = 2


def archives(host: Any) -> list[str]:
    listing = json.loads(host.check_output(f"{SDK} backup list --json --output-dir {BACKUP_DIR}"))
    return [backup["name"] for backup in listing["backups"]]


def test_backup_timer_is_enabled_with_the_configured_schedule(fleet: Any, lab_host: Any) -> None:
    host = lab_host(HOST)
    timer = host.service("mcp-mesh-backup.timer")
    assert timer.is_enabled and timer.is_running
    properties = "-p TimersCalendar -p Persistent -p RandomizedDelayUSec"
    shown = host.check_output(f"systemctl show mcp-mesh-backup.timer {properties}")
    assert "OnCalendar=*-*-* 00:00:00" in shown  # daily
    assert "Persistent=yes" in shown
    assert "RandomizedDelayUSec=1h" in shown
    directory = host.file(BACKUP_DIR)
    assert (directory.user, directory.group, directory.mode) == ("root", "mcp-mesh", 0o750)


def test_backup_service_is_hardened(fleet: Any, lab_host: Any) -> None:
    out = lab_host(HOST).check_output("systemd-analyze security mcp-mesh-backup.service")
    exposure = float(
        out.rsplit("Overall exposure level for mcp-mesh-backup.service:", 1)[1].split()[0]
    )
    assert exposure <= 1.5, out[-400:]


def test_timer_service_writes_verified_backups_and_keeps_the_configured_number(
    fleet: Any, lab_host: Any
) -> None:
    host = lab_host(HOST)
    retention = ("--limit", HOST, "--tags", "backup")
    changed = fleet.playbook(*retention, "-e", f"mesh_agent_backup_keep={KEEP}")
    assert changed.returncode == 0, changed.stdout[-3000:]
    try:
        for _ in range(KEEP + 2):
            host.check_output("systemctl start mcp-mesh-backup.service")
        names = archives(host)
        assert len(names) == KEEP, names
        report = json.loads(
            host.check_output(f"{SDK} backup verify latest --json --output-dir {BACKUP_DIR}")
        )
        assert report["ok"] and report["name"] == names[0]
    finally:
        restored = fleet.playbook(*retention)
        assert restored.returncode == 0, restored.stdout[-3000:]
