import gzip
import io
import json
import tarfile

import pytest
from test_backup_helpers import make_host

from mcp_mesh_sdk.backup.catalog import list_backups
from mcp_mesh_sdk.backup.create import create_backup
from mcp_mesh_sdk.backup.verify import verify_archive
from mcp_mesh_sdk.cli import main


@pytest.fixture
def archive(tmp_path):
    host = make_host(tmp_path)
    (host.data / "big.bin").write_bytes(bytes(range(256)) * 20000)
    return create_backup(host.sources()).path


def test_intact_archive_verifies(archive, capsys) -> None:
    report = verify_archive(archive)
    assert report.ok, report.problems()
    assert report.checked == len(report.manifest.entries)
    assert main(["backup", "verify", str(archive), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


@pytest.mark.parametrize("where", [0.3, 0.6, 0.95])
def test_a_bit_flip_fails(archive, where) -> None:
    raw = bytearray(archive.read_bytes())
    raw[int(len(raw) * where)] ^= 0x01
    archive.write_bytes(bytes(raw))
    report = verify_archive(archive)
    assert not report.ok
    assert report.problems()


def test_a_truncated_archive_fails(archive, capsys) -> None:
    raw = archive.read_bytes()
    archive.write_bytes(raw[: len(raw) // 2])
    report = verify_archive(archive)
    assert report.corrupt and "truncated" in report.corrupt
    assert main(["backup", "verify", str(archive)]) == 1
    assert "FAILED" in capsys.readouterr().out


def _rewrite(archive, change) -> None:
    """Re-pack the archive's tar stream with `change(members)` applied (manifest untouched)."""
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar]
    members = change(members)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    archive.write_bytes(gzip.compress(buffer.getvalue()))


def test_an_added_file_fails(archive) -> None:
    def add(members):
        info = tarfile.TarInfo("data/intruder.txt")
        info.size = 4
        return [*members, (info, b"evil")]

    _rewrite(archive, add)
    report = verify_archive(archive)
    assert report.extra == ["data/intruder.txt"]
    assert not report.ok


def test_a_missing_and_a_changed_member_fail(archive) -> None:
    def change(members):
        kept = [(i, d) for i, d in members if i.name != "data/docs/b.json"]
        for info, data in kept:
            if info.name == "data/docs/a.txt":
                kept[kept.index((info, data))] = (info, data.replace(b"alpha", b"ALPHA"))
        return kept

    _rewrite(archive, change)
    report = verify_archive(archive)
    assert report.missing == ["data/docs/b.json"]
    assert report.changed == ["data/docs/a.txt (sha256 differs)"]


def test_list_shows_cached_verification_and_notices_a_change(archive, capsys) -> None:
    backup_dir = archive.parent
    assert list_backups(backup_dir)[0].verified == "unknown"
    verify_archive(archive)
    assert list_backups(backup_dir)[0].verified == "ok"
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    archive.write_bytes(bytes(raw))  # size same, mtime changes: the cache no longer applies
    assert list_backups(backup_dir)[0].verified == "unknown"
    verify_archive(archive)
    assert main(["backup", "list", "--json", "--output-dir", str(backup_dir)]) == 0
    [listed] = json.loads(capsys.readouterr().out)["backups"]
    assert listed["verified"] == "failed"
    assert {"name", "time", "size", "version", "verified"} <= set(listed)
