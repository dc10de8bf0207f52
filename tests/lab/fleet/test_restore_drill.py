"""Restore drill: files written through MCP, backup.yml (fetched), data wiped and env file
changed, restore.yml full: every file and the env file are back, the agent healthy and
registered; the controller's copy verifies, holds no secret in clear, and `age -d` with the
identity opens it by hand."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

BACKUP_DIR = "/var/backups/mcp-mesh"
DATA_DIR = "/var/lib/mcp-mesh/data"
ENV_FILE = "/etc/mcp-mesh/agent.env"
SDK = "/opt/mcp-mesh/current/venv/bin/mcp-mesh-sdk"
DRILL_FILES = {
    f"drill/file{index}.txt": f"line {index}\n" * (index * 4000) + "é €\n" for index in range(1, 6)
} | {"drill/nested/deeper/config.json": json.dumps({"drill": True, "n": list(range(50))})}


def write_through_mcp(fleet: Any, host: str, path: str, content: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call"}
    body["params"] = {"name": "write_file", "arguments": {"path": path, "content": content}}
    request = urllib.request.Request(
        fleet.agent_url(host, "/mcp"),
        data=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {fleet.tokens['agent']}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        },
    )
    with fleet.urlopen(request) as response:
        answer = json.loads(response.read())
    assert not answer["result"].get("isError"), answer


def data_hashes(host: Any) -> dict[str, str]:
    """relative path -> sha256 of every file under the data directory."""
    out = host.check_output(f"cd {DATA_DIR} && find . -type f -print0 | xargs -0r sha256sum")
    return {line[66:].removeprefix("./"): line[:64] for line in out.splitlines() if line}


def run(fleet: Any, playbook: str, host: str, *args: str) -> subprocess.CompletedProcess[str]:
    return fleet.playbook("--limit", host, *args, playbook=f"playbooks/{playbook}")


def registered_healthy(fleet: Any, host: str) -> bool:
    return len(fleet.registry_agents(status="healthy", name=host)) == 1


def test_full_restore_brings_back_every_file_and_the_env_file(
    fleet: Any, lab_host: Any, tmp_path: Path
) -> None:
    name = "agent2"
    host = lab_host(name)
    for path, content in DRILL_FILES.items():
        write_through_mcp(fleet, name, path, content)
    expected = {path: hashlib.sha256(c.encode()).hexdigest() for path, c in DRILL_FILES.items()}
    assert expected.items() <= data_hashes(host).items()
    env_before = host.file(ENV_FILE).content

    controller = tmp_path / "backups"
    fetched = run(
        fleet, "backup.yml", name,
        "-e", "mesh_backup_fetch=true", "-e", f"mesh_backup_controller_dir={controller}",
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stdout[-3000:]
    copies = sorted((controller / name).glob("mcp-mesh-*.tar.gz.age"))
    assert len(copies) == 1
    key = tmp_path / "backup.key"
    key.touch(mode=0o600)
    key.write_text(fleet.tokens["backup_identity"] + "\n")
    checked = subprocess.run(
        [str(Path(sys.executable).parent / "mcp-mesh-sdk"), "backup", "verify", "--json",
         "--output-dir", str(copies[0].parent), "--identity-file", str(key), str(copies[0])],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    report = json.loads(checked.stdout)
    assert checked.returncode == 0 and report["ok"] and report["authenticated"], checked.stdout
    copy = copies[0].read_bytes()
    assert fleet.tokens["agent"].encode() not in copy
    assert fleet.tokens["registry"].encode() not in copy
    by_hand = subprocess.run(
        f"age -d -i {key} {copies[0]} | tar -tz", shell=True, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert by_hand.returncode == 0, by_hand.stderr
    assert "config/agent.env" in by_hand.stdout.split()

    host.check_output(f"rm -rf {DATA_DIR}/drill && echo 'LOG_LEVEL=DEBUG' >> {ENV_FILE}")
    assert host.file(ENV_FILE).content != env_before
    restored = run(fleet, "restore.yml", name, "-e", "mesh_restore_mode=full")
    assert restored.returncode == 0, restored.stdout[-3000:]

    assert expected.items() <= data_hashes(host).items()
    assert host.file(ENV_FILE).content == env_before
    assert host.service("mcp-mesh-sdk.service").is_running
    assert registered_healthy(fleet, name)
