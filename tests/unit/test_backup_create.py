import io
import json
import socket
import subprocess
import tarfile

from test_backup_helpers import decrypt, make_host

from mcp_mesh_sdk.backup.create import create_backup
from mcp_mesh_sdk.backup.reader import read_manifest
from mcp_mesh_sdk.cli import main


def test_archive_starts_with_a_manifest_of_every_member(tmp_path) -> None:
    host = make_host(tmp_path)
    result = create_backup(host.sources())
    with tarfile.open(fileobj=io.BytesIO(decrypt(result.path, host.key()))) as tar:
        names = tar.getnames()
        assert names[:2] == ["MANIFEST.json", "MANIFEST.hmac"]
        manifest = json.loads(tar.extractfile("MANIFEST.json").read())
    assert {m["path"] for m in manifest["members"]} == set(names[2:])
    by_path = {m["path"]: m for m in manifest["members"]}
    assert "config/agent.env" in by_path
    assert by_path["data/secret.yaml"]["mode"] == 0o600
    assert by_path["data/link-to-a"] == {**by_path["data/link-to-a"], "type": "symlink",
                                          "target": "docs/a.txt"}  # fmt: skip
    assert len(by_path["data/docs/a.txt"]["sha256"]) == 64
    assert {"created_at", "host", "agent_version", "schema_version"} <= set(manifest)
    # data nested in state is archived once, under data/
    assert not any(p.startswith("state/data") for p in by_path)


def test_age_and_tar_open_the_archive_by_hand(tmp_path) -> None:
    """What the runbook tells an operator: `age -d -i KEY ARCHIVE | tar -tz`."""
    host = make_host(tmp_path)
    result = create_backup(host.sources())
    opened = subprocess.run(
        f"age -d -i {host.identity_file} {result.path} | tar -tz",
        shell=True, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    assert {"MANIFEST.json", "data/docs/a.txt", "config/agent.env"} <= set(opened.stdout.split())
    assert "backup.key" not in opened.stdout  # the identity never goes into a backup


def test_backup_dir_and_sockets_are_skipped(tmp_path) -> None:
    host = make_host(tmp_path)
    inside = host.state / "backups"  # a backup dir inside what is backed up
    sources = host.sources()
    sources = type(sources)(**{**sources.__dict__, "backup_dir": inside})
    create_backup(sources)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(host.state / "agent.sock"))
        second = create_backup(sources)
    paths = {entry.path for entry in read_manifest(second.path, host.key()).entries}
    assert not any("backups" in p or "agent.sock" in p for p in paths)
    assert any("agent.sock" in s for s in second.skipped)


def test_no_temporary_file_is_left_and_the_name_sorts_by_time(tmp_path) -> None:
    host = make_host(tmp_path)
    first = create_backup(host.sources())
    second = create_backup(host.sources())
    assert sorted(p.name for p in host.backups.iterdir() if p.name.endswith(".age")) == [
        first.name, second.name,
    ]  # fmt: skip
    assert not [p for p in host.backups.iterdir() if p.name.startswith(".")]


def test_cli_create_json_names_size_and_sha256(tmp_path, capsys) -> None:
    host = make_host(tmp_path)
    assert main(["backup", "create", "--json", "--env-file", str(host.env_file)]) == 0
    document = json.loads(capsys.readouterr().out)
    archive = host.backups / document["name"]
    assert document["size"] == archive.stat().st_size
    import hashlib

    assert document["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()


def test_unreadable_source_is_a_clear_error(tmp_path, capsys) -> None:
    host = make_host(tmp_path)
    code = main(["backup", "create", "--env-file", str(host.env_file),
                 "--data-dir", str(tmp_path / "missing")])  # fmt: skip
    assert code == 0  # a missing root is a warning in the manifest, not a failure
    assert "does not exist" in capsys.readouterr().err


def test_filler_members_decompress_to_nothing_for_any_size() -> None:
    import gzip

    from mcp_mesh_sdk.backup.layout import filler

    for size in (0, 22, 23, 100, 65557, 65558, 65580, 200_000):
        blob = filler(size)
        assert len(blob) == size
        assert gzip.decompress(blob) == b""
    done = subprocess.run(["gzip", "-dc"], input=filler(70_000), capture_output=True)
    assert (done.returncode, done.stdout) == (0, b"")


def test_manifest_outgrowing_its_space_still_gives_a_valid_archive(tmp_path, monkeypatch) -> None:
    from mcp_mesh_sdk.backup import layout
    from mcp_mesh_sdk.backup.verify import verify_archive

    monkeypatch.setattr(layout, "reserve_for", lambda bound: 64)  # far too small
    host = make_host(tmp_path)
    result = create_backup(host.sources())
    import hashlib

    assert result.sha256 == hashlib.sha256(result.path.read_bytes()).hexdigest()
    assert verify_archive(result.path, host.key()).ok
    with tarfile.open(fileobj=io.BytesIO(decrypt(result.path, host.key()))) as tar:
        assert tar.getnames()[0] == "MANIFEST.json"


def test_live_sqlite_database_is_archived_as_a_consistent_snapshot(tmp_path) -> None:
    import sqlite3

    from mcp_mesh_sdk.backup.restore import restore_backup

    host = make_host(tmp_path)
    database = host.state / "registry.db"
    writer = sqlite3.connect(database, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")  # rows stay in the -wal file only
    writer.execute("CREATE TABLE agents (name TEXT)")
    writer.executemany("INSERT INTO agents VALUES (?)", [("a1",), ("a2",)])
    assert (host.state / "registry.db-wal").stat().st_size > 0
    try:
        result = create_backup(host.sources())
    finally:
        writer.close()
    paths = {entry.path for entry in read_manifest(result.path, host.key()).entries}
    assert "state/registry.db" in paths
    assert not any(p.endswith(("-wal", "-shm")) for p in paths)

    database.unlink()
    restore_backup(result.path, "full", host.sources(), key=host.key())
    restored = sqlite3.connect(database)
    assert restored.execute("SELECT name FROM agents ORDER BY name").fetchall() == [
        ("a1",),
        ("a2",),
    ]
    restored.close()


def test_the_agents_own_entries_in_the_data_directory_are_left_out(tmp_path) -> None:
    from mcp_mesh_sdk.agent.tools import _TEMP_PREFIX
    from mcp_mesh_sdk.backup.create import AGENT_OWN_PREFIX
    from mcp_mesh_sdk.smoke import SMOKE_PREFIX

    host = make_host(tmp_path)
    smoke = host.data / f"{SMOKE_PREFIX}0123abcd"  # a smoke test's folder, left behind
    smoke.mkdir()
    (smoke / "smoke.txt").write_text("mcp-mesh smoke ✓\n")
    (host.data / "docs" / f"{AGENT_OWN_PREFIX}5f3a.tmp").write_text("half a write")
    (host.data / "docs" / "x.mcp-mesh-kept.txt").write_text("a client's file")
    (host.state / f"{AGENT_OWN_PREFIX}state-file").write_text("state is kept whole")

    archive = create_backup(host.sources()).path
    paths = {entry.path for entry in read_manifest(archive, host.key()).entries}

    assert AGENT_OWN_PREFIX == _TEMP_PREFIX and SMOKE_PREFIX.startswith(AGENT_OWN_PREFIX)
    own = [p for p in paths if any(part.startswith(AGENT_OWN_PREFIX) for part in p.split("/"))]
    assert own == [f"state/{AGENT_OWN_PREFIX}state-file"]
    assert {"data/docs/a.txt", "data/docs/x.mcp-mesh-kept.txt"} <= paths
    assert f"state/{AGENT_OWN_PREFIX}state-file" in paths
