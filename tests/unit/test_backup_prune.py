import json
from datetime import UTC, datetime, timedelta

from test_backup_helpers import make_host

from mcp_mesh_sdk.backup.catalog import list_backups
from mcp_mesh_sdk.backup.create import create_backup
from mcp_mesh_sdk.backup.prune import prune
from mcp_mesh_sdk.backup.verify import verify_archive
from mcp_mesh_sdk.cli import main

START = datetime(2026, 1, 1, tzinfo=UTC)


def make_backups(tmp_path, count: int):
    host = make_host(tmp_path)
    made = [create_backup(host.sources(), now=START + timedelta(days=n)) for n in range(count)]
    return host, made  # oldest first


def names(backups) -> list[str]:
    return [b.name for b in backups]


def test_keeps_the_newest_n(tmp_path) -> None:
    host, made = make_backups(tmp_path, 4)
    outcome = prune(host.backups, keep=2, now=START + timedelta(days=4), key=host.key())
    assert names(outcome.deleted) == [made[1].name, made[0].name]
    assert names(list_backups(host.backups, host.key())) == [made[3].name, made[2].name]
    assert not list(host.backups.glob(f"{made[0].name}*"))  # sidecar gone too


def test_never_deletes_the_newest_verified_backup(tmp_path) -> None:
    host, made = make_backups(tmp_path, 3)
    newest = made[2].path
    newest.write_bytes(newest.read_bytes()[:-50])  # the newest one is damaged
    outcome = prune(host.backups, keep=1, now=START + timedelta(days=3), key=host.key())
    assert outcome.protected == made[1].name
    assert set(names(outcome.kept)) == {made[2].name, made[1].name}
    assert verify_archive(made[1].path, host.key()).ok


def test_max_age_deletes_old_ones_but_not_the_newest_verified(tmp_path) -> None:
    host, made = make_backups(tmp_path, 3)
    outcome = prune(
        host.backups, keep=3, max_age_days=1, now=START + timedelta(days=30), key=host.key()
    )
    assert names(outcome.kept) == [made[2].name]
    assert len(outcome.deleted) == 2


def test_dry_run_deletes_nothing(tmp_path, capsys) -> None:
    host, _ = make_backups(tmp_path, 3)
    code = main(["backup", "prune", "--keep", "1", "--dry-run", "--json",
                 "--output-dir", str(host.backups), "--env-file", str(host.env_file)])  # fmt: skip
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert len(document["deleted"]) == 2
    assert len(list_backups(host.backups, host.key())) == 3


def test_temporaries_of_a_killed_create_are_removed_once_stale(tmp_path) -> None:
    import os

    host, made = make_backups(tmp_path, 1)
    old = host.backups / ".mcp-mesh-vm-20250101T000000.000Z.tar.gz.tmp"
    fresh = host.backups / ".mcp-mesh-vm-20260101T000000.000Z.tar.gz.tmp"
    for path in (old, fresh):
        path.write_bytes(b"partial")
    os.utime(old, (0, 0))
    outcome = prune(host.backups, keep=5, key=host.key())
    assert outcome.temporaries == [old.name]
    assert not old.exists() and fresh.exists()
    assert names(list_backups(host.backups, host.key())) == [made[0].name]
