"""A corrupted archive (one byte flipped) is named by verify_backup.yml and refused by
restore.yml, which leaves the host's data as it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from test_restore_drill import BACKUP_DIR, SDK, data_hashes, run, write_through_mcp


def flat(text: str) -> str:
    """Ansible's output with its line wrapping undone."""
    return " ".join(text.split())


def test_a_corrupted_archive_is_named_by_verify_and_refused_by_restore(
    fleet: Any, lab_host: Any, tmp_path: Path
) -> None:
    name = "agent3"
    host = lab_host(name)
    write_through_mcp(fleet, name, "drill/keep.txt", "before the corruption\n" * 1000)
    made = run(fleet, "backup.yml", name, "-e", f"mesh_backup_controller_dir={tmp_path}")
    assert made.returncode == 0, made.stdout[-3000:]
    listing = json.loads(host.check_output(f"{SDK} backup list --json --output-dir {BACKUP_DIR}"))
    archive = listing["backups"][0]["path"]
    host.check_output(
        'python3 -c \'import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read()); '
        'b[len(b) // 2] ^= 0xFF; open(p, "wb").write(b)\' ' + archive
    )
    write_through_mcp(fleet, name, "drill/after.txt", "written after the backup\n")
    before = data_hashes(host)
    try:
        verified = run(
            fleet, "verify_backup.yml", name, "-e", f"mesh_backup_controller_dir={tmp_path}"
        )
        assert verified.returncode != 0
        assert "backups that do not verify: " + Path(archive).name in flat(verified.stdout)

        refused = run(
            fleet, "restore.yml", name,
            "-e", "mesh_restore_mode=full", "-e", f"mesh_restore_backup={Path(archive).name}",
        )  # fmt: skip
        assert refused.returncode != 0
        assert f"refusing to restore {Path(archive).name}" in flat(refused.stdout)
        assert data_hashes(host) == before
        assert host.service("mcp-mesh-sdk.service").is_running
    finally:
        host.check_output(f"rm -f {archive} {archive}.verify.json")
