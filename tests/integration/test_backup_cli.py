"""`mcp-mesh-sdk backup` end to end as the playbooks run it: separate processes, JSON out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_mesh_sdk", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def host(tmp_path: Path) -> dict[str, Path]:
    etc, state = tmp_path / "etc", tmp_path / "state"
    data = state / "data"
    (data / "docs").mkdir(parents=True)
    etc.mkdir()
    env_file = etc / "agent.env"
    env_file.write_text(
        f"MCP_MESH_STATE_DIR={state}\nBASE_DIRECTORY={data}\n"
        f"MCP_MESH_TOKEN=abcdefghijklmnopqrstuvwxyz\nMCP_MESH_BACKUP_DIR={tmp_path / 'backups'}\n"
    )
    for n in range(50):
        (data / "docs" / f"note{n}.txt").write_text(f"note {n}\n" * 1000)
    key = etc / "backup.key"  # the identity, made as the runbook says
    made = subprocess.run(["age-keygen", "-o", str(key)], capture_output=True, text=True)
    assert made.returncode == 0 and key.stat().st_mode & 0o077 == 0, made.stderr
    return {"env": env_file, "data": data, "state": state, "backups": tmp_path / "backups",
            "key": key}  # fmt: skip


def test_create_verify_damage_restore_prune(host) -> None:
    env = ["--env-file", str(host["env"])]
    assert cli("migrate", *env).returncode == 0
    created = cli("backup", "create", "--json", *env)
    assert created.returncode == 0, created.stderr
    first = json.loads(created.stdout)
    assert first["schema_version"] >= 1

    second = json.loads(cli("backup", "create", "--json", *env).stdout)
    listed = json.loads(cli("backup", "list", "--json", *env).stdout)["backups"]
    assert [b["name"] for b in listed] == [second["name"], first["name"]]

    verified = cli("backup", "verify", "latest", "--json", *env)
    assert verified.returncode == 0
    assert json.loads(verified.stdout)["ok"] is True

    archive = Path(second["path"])
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 2] ^= 0x04
    archive.write_bytes(bytes(raw))
    damaged = cli("backup", "verify", second["name"], "--json", *env)
    assert damaged.returncode == 1
    assert json.loads(damaged.stdout)["ok"] is False

    refused = cli("backup", "restore", second["name"], "--mode", "data", *env)
    assert refused.returncode != 0
    assert "does not verify" in refused.stderr
    assert "Traceback" not in refused.stderr

    (host["data"] / "docs" / "note7.txt").write_text("oops")
    restored = cli("backup", "restore", first["name"], "--mode", "data", "--json", *env)
    assert restored.returncode == 0, restored.stderr
    assert (host["data"] / "docs" / "note7.txt").read_text() == "note 7\n" * 1000

    pruned = json.loads(cli("backup", "prune", "--keep", "0", "--json", *env).stdout)
    assert pruned["newest_verified"] == first["name"]  # the damaged newer one does not count
    assert pruned["deleted"] == [second["name"]]
    assert [p.name for p in host["backups"].glob("*.tar.gz.age")] == [first["name"]]


def test_restore_killed_while_staging_leaves_the_data_as_it_was(host) -> None:
    import os
    import signal
    import time

    env = ["--env-file", str(host["env"])]
    with (host["data"] / "big.bin").open("wb") as out:
        for _ in range(48):
            out.write(os.urandom(4 << 20))
    assert cli("backup", "create", *env).returncode == 0
    (host["data"] / "docs" / "note1.txt").write_text("changed after the backup")
    before = {p: p.read_bytes() for p in host["data"].rglob("*") if p.is_file()}

    restore = subprocess.Popen(
        [sys.executable, "-m", "mcp_mesh_sdk", "backup", "restore", "latest", "--mode", "data",
         *env],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    staging = []
    deadline = time.monotonic() + 60
    while not staging and time.monotonic() < deadline and restore.poll() is None:
        staging = list(host["state"].glob(".data.restore-*"))
        time.sleep(0.005)
    restore.send_signal(signal.SIGKILL)
    restore.wait(10)
    assert staging, "the restore finished before it could be killed while staging"

    after = {p: p.read_bytes() for p in host["data"].rglob("*") if p.is_file()}
    assert after == before
    warned = cli("backup", "restore", "latest", "--mode", "data", "--json", *env)
    assert warned.returncode == 0, warned.stderr
    assert any("interrupted restore" in w for w in json.loads(warned.stdout)["warnings"])


def test_report_on_the_host_then_on_the_controller_with_its_copies(host, tmp_path) -> None:
    """The two commands verify_backup.yml runs, as separate processes joined by stdin."""
    env = ["--env-file", str(host["env"])]
    assert cli("migrate", *env).returncode == 0
    made = json.loads(cli("backup", "create", "--json", *env).stdout)
    on_host = cli("backup", "report", "--json", "--host", "agent1", *env)
    assert on_host.returncode == 0, on_host.stderr
    copies = tmp_path / "controller" / "agent1"
    copies.mkdir(parents=True)
    (copies / made["name"]).write_bytes(Path(made["path"]).read_bytes()[:-100])
    judged = subprocess.run(
        [sys.executable, "-m", "mcp_mesh_sdk", "backup", "report", "--from-json", "-",
         "--copies", str(copies), "--identity-file", str(host["key"])],
        input=on_host.stdout, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert judged.returncode == 1, judged.stderr
    lines = judged.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:-1] if made["name"] in line] == ["host", "copy"]
    assert lines[-1] == f"agent1: backups that do not verify: {made['name']}"


def test_a_backup_holds_no_secret_in_clear_and_age_opens_it_by_hand(host) -> None:
    """What the restore runbook tells an operator, with the identity age-keygen made."""
    env = ["--env-file", str(host["env"])]
    made = cli("backup", "create", "--json", "--level", "0", *env)  # stored: nothing hides it
    assert made.returncode == 0, made.stderr
    archive = Path(json.loads(made.stdout)["path"])
    assert archive.name.endswith(".tar.gz.age")
    assert b"abcdefghijklmnopqrstuvwxyz" not in archive.read_bytes()  # MCP_MESH_TOKEN
    opened = subprocess.run(
        f"age -d -i {host['key']} {archive} | tar -xzO config/agent.env",
        shell=True, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    assert "MCP_MESH_TOKEN=abcdefghijklmnopqrstuvwxyz" in opened.stdout
    other = host["key"].with_name("other.key")
    subprocess.run(["age-keygen", "-o", str(other)], capture_output=True, check=True)
    refused = cli("backup", "verify", archive.name, "--identity-file", str(other), *env)
    assert refused.returncode == 1 and "not authentic" in refused.stdout
    assert "Traceback" not in refused.stderr
