import gzip
import io
import json
import tarfile

import pytest
from test_backup_helpers import decrypt, encrypt, make_host

from mcp_mesh_sdk.backup.catalog import list_backups
from mcp_mesh_sdk.backup.create import create_backup
from mcp_mesh_sdk.backup.verify import verify_archive
from mcp_mesh_sdk.cli import main


@pytest.fixture
def host(tmp_path):
    host = make_host(tmp_path)
    (host.data / "big.bin").write_bytes(bytes(range(256)) * 20000)
    return host


@pytest.fixture
def archive(host):
    return create_backup(host.sources()).path


@pytest.fixture
def key(host):
    return host.key()


def test_intact_archive_verifies(archive, key, host, capsys) -> None:
    report = verify_archive(archive, key)
    assert report.ok, report.problems()
    assert report.encrypted is True
    assert report.checked == len(report.manifest.entries)
    identity = ["--identity-file", str(host.identity_file)]
    assert main(["backup", "verify", str(archive), "--json", *identity]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is True and document["authenticated"] is True


@pytest.mark.parametrize("where", [0.3, 0.6, 0.95])
def test_a_bit_flip_fails(archive, key, where) -> None:
    raw = bytearray(archive.read_bytes())
    raw[int(len(raw) * where)] ^= 0x01
    archive.write_bytes(bytes(raw))
    report = verify_archive(archive, key)
    assert not report.ok
    assert "age refused it" in report.unauthentic
    assert report.problems()[0].startswith("not authentic: ")


def test_a_truncated_archive_fails(archive, key, host, capsys) -> None:
    raw = archive.read_bytes()
    archive.write_bytes(raw[: len(raw) // 2])
    report = verify_archive(archive, key)
    assert report.unauthentic and "cut short" in report.unauthentic
    identity = ["--identity-file", str(host.identity_file)]
    assert main(["backup", "verify", str(archive), *identity]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "not authentic" in out


def _rewrite(archive, key, change) -> None:
    """Re-pack the archive's tar stream with `change(members)` applied (manifest untouched),
    encrypted again to the recipient."""
    with tarfile.open(fileobj=io.BytesIO(decrypt(archive, key))) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar]
    members = change(members)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    encrypt(archive, gzip.compress(buffer.getvalue()), key)


def test_an_added_file_fails(archive, key) -> None:
    def add(members):
        info = tarfile.TarInfo("data/intruder.txt")
        info.size = 4
        return [*members, (info, b"evil")]

    _rewrite(archive, key, add)
    report = verify_archive(archive, key)
    assert report.extra == ["data/intruder.txt"]
    assert not report.ok


def test_a_missing_and_a_changed_member_fail(archive, key) -> None:
    def change(members):
        kept = [(i, d) for i, d in members if i.name != "data/docs/b.json"]
        for info, data in kept:
            if info.name == "data/docs/a.txt":
                kept[kept.index((info, data))] = (info, data.replace(b"alpha", b"ALPHA"))
        return kept

    _rewrite(archive, key, change)
    report = verify_archive(archive, key)
    assert report.missing == ["data/docs/b.json"]
    assert report.changed == ["data/docs/a.txt (sha256 differs)"]


def test_list_shows_cached_verification_and_notices_a_change(archive, key, capsys) -> None:
    backup_dir = archive.parent
    assert list_backups(backup_dir, key)[0].verified == "unknown"
    verify_archive(archive, key)
    assert list_backups(backup_dir, key)[0].verified == "ok"
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    archive.write_bytes(bytes(raw))  # size same, mtime changes: the cache no longer applies
    assert list_backups(backup_dir, key)[0].verified != "ok"  # its manifest no longer opens
    verify_archive(archive, key)
    assert main(["backup", "list", "--json", "--output-dir", str(backup_dir)]) == 0
    [listed] = json.loads(capsys.readouterr().out)["backups"]
    assert listed["verified"] == "failed"
    assert {"name", "time", "size", "version", "verified"} <= set(listed)
