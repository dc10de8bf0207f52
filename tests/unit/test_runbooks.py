"""Every playbook, mesh-ops command and mcp-mesh-sdk command a runbook names exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mesh_ops.cli import parser as mesh_ops_parser

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = sorted((REPO / "docs" / "runbooks").glob("*.md"))
PLAYBOOK = re.compile(r"playbooks/[\w/-]+\.yml")
MESH_OPS = re.compile(r"\bmesh-ops ([a-z]+)")
SDK = re.compile(r"\bmcp-mesh-sdk ([a-z][a-z-]*)(?: ([a-z]+)\b)?")
LINK = re.compile(r"\]\(([\w.-]+\.md)\)")
EXPECTED = {
    "high-memory.md", "high-disk.md", "connection-timeouts.md", "file-permissions.md",
    "failed-upgrade.md", "restore-from-backup.md", "security-events.md",
}  # fmt: skip


def mesh_ops_commands() -> set[str]:
    subparsers = next(a for a in mesh_ops_parser()._actions if a.dest == "command")
    return set(subparsers.choices)  # type: ignore[arg-type]


def test_every_topic_has_a_runbook() -> None:
    assert {path.name for path in RUNBOOKS} >= EXPECTED


@pytest.mark.parametrize("runbook", RUNBOOKS, ids=lambda path: path.name)
def test_named_playbooks_commands_and_links_exist(runbook: Path) -> None:
    text = runbook.read_text()
    for playbook in PLAYBOOK.findall(text):
        assert (REPO / playbook).is_file(), f"{runbook.name} names {playbook}, which does not exist"
    known = mesh_ops_commands()
    for command in MESH_OPS.findall(text):
        assert command in known, f"{runbook.name} names `mesh-ops {command}` (known: {known})"
    for link in LINK.findall(text):
        assert (runbook.parent / link).is_file(), f"{runbook.name} links to missing {link}"


def sdk_commands() -> set[tuple[str, str]]:
    found = set()
    for runbook in RUNBOOKS:
        for command, action in SDK.findall(runbook.read_text()):
            found.add((command, action))
    return found


@pytest.mark.parametrize("command", sorted(sdk_commands()), ids=" ".join)
def test_named_mcp_mesh_sdk_commands_exist(command: tuple[str, str]) -> None:
    name, action = command
    module = REPO / "runtime" / "mcp_mesh_sdk" / "commands" / f"{name.replace('-', '_')}.py"
    assert module.is_file(), f"a runbook names `mcp-mesh-sdk {name}`, which does not exist"
    words = [name, action] if action else [name]
    done = subprocess.run(
        [sys.executable, "-m", "mcp_mesh_sdk", *words, "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0, f"`mcp-mesh-sdk {' '.join(words)}` is not a command: {done.stderr}"
