"""Backups an attacker cannot forge, redirect or read: authentication, the restore target, the
staging directory, setuid bits, secrets at rest, and the identity file's own errors."""

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from datetime import UTC, datetime

import pytest
from test_backup_helpers import (
    TOKEN,
    craft_archive,
    decrypt,
    encrypt,
    make_host,
    member,
    snapshot,
    write_identity,
)

from mcp_mesh_sdk.backup import restore as restore_module
from mcp_mesh_sdk.backup.create import create_backup
from mcp_mesh_sdk.backup.encryption import load_key
from mcp_mesh_sdk.backup.restore import restore_backup
from mcp_mesh_sdk.backup.verify import verify_archive
from mcp_mesh_sdk.cli import main
from mcp_mesh_sdk.errors import OpsError


def forge(plaintext: bytes, path: str, content: bytes) -> tuple[bytes, bytes]:
    """The tar.gz with `path`'s content replaced and the manifest's checksum recomputed to match
    (its HMAC member left as it was); and the forged manifest."""
    with tarfile.open(fileobj=io.BytesIO(plaintext)) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar]
    manifest = json.loads(members[0][1])
    for entry in manifest["members"]:
        if entry["path"] == path:
            entry["sha256"] = hashlib.sha256(content).hexdigest()
            entry["size"] = len(content)
    forged_manifest = json.dumps(manifest).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            data = forged_manifest if info.name == "MANIFEST.json" else data
            data = content if info.name == path else data
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(buffer.getvalue()), forged_manifest


@pytest.fixture
def host(tmp_path):
    return make_host(tmp_path)


def test_changed_content_with_a_recomputed_manifest_is_refused(host, capsys) -> None:
    """The forger has the recipient (the public key), not the identity: age accepts the
    re-encrypted archive, the manifest's HMAC does not."""
    key = host.key()
    archive = create_backup(host.sources()).path
    forged, _ = forge(decrypt(archive, key), "data/docs/a.txt", b"planted by an attacker\n")
    encrypt(archive, forged, key)
    (host.data / "docs" / "a.txt").write_text("current\n")
    before = snapshot(host.root)

    report = verify_archive(archive, key)
    assert not report.ok and report.encrypted
    assert "HMAC does not match" in report.unauthentic
    assert main(["backup", "verify", str(archive), "--env-file", str(host.env_file)]) == 1
    assert "not authentic" in capsys.readouterr().out
    with pytest.raises(OpsError, match=r"refusing to restore .*not authentic"):
        restore_backup(archive, "data", host.sources(), key=key)
    code = main(["backup", "restore", "latest", "--mode", "full", "--env-file", str(host.env_file)])
    assert code == 1 and "Traceback" not in capsys.readouterr().err
    assert snapshot(host.root) == before
    assert (host.data / "docs" / "a.txt").read_text() == "current\n"


def test_an_archive_made_with_another_identity_is_refused(host, tmp_path) -> None:
    archive = create_backup(host.sources()).path
    other = load_key(write_identity(tmp_path / "other.key"))
    report = verify_archive(archive, other)
    assert not report.ok and "age refused it" in report.unauthentic


def test_a_forged_legacy_archive_is_flagged_and_restored_only_when_allowed(host, capsys) -> None:
    """An unencrypted archive cannot be authenticated: verify says so, restore refuses it
    unless the operator asks for it, and warns."""
    key = host.key()
    made = create_backup(host.sources())
    forged, _ = forge(decrypt(made.path, key), "data/docs/a.txt", b"planted\n")
    legacy = host.backups / made.name.removesuffix(".age")
    legacy.write_bytes(forged)
    made.path.unlink()
    before = snapshot(host.root)

    env = ["--env-file", str(host.env_file)]
    assert main(["backup", "verify", legacy.name, *env]) == 0
    assert "unencrypted (legacy): not authenticated" in capsys.readouterr().out
    assert main(["backup", "restore", legacy.name, "--mode", "data", *env]) == 1
    assert "--allow-unencrypted" in capsys.readouterr().err
    assert snapshot(host.root) == before

    restore = ["backup", "restore", legacy.name, "--mode", "data", "--allow-unencrypted"]
    assert main([*restore, *env]) == 0
    assert "warning:" in capsys.readouterr().err
    assert (host.data / "docs" / "a.txt").read_text() == "planted\n"


def test_an_older_archive_renamed_as_the_latest_does_not_verify(host) -> None:
    archive = create_backup(host.sources()).path
    renamed = archive.with_name(archive.name.replace("2026", "2099", 1))
    archive.rename(renamed)
    report = verify_archive(renamed, host.key())
    assert not report.ok and "renamed" in report.archive_changed


def test_the_restore_target_comes_from_the_host_never_from_the_archive(host, tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    host.backups.mkdir()
    archive = craft_archive(
        host.backups / "chosen.tar.gz.age",
        [member("data", kind=tarfile.DIRTYPE, mode=0o755), member("data/x.txt", b"x")],
        roots={"data": str(elsewhere)}, key=host.key(),
    )  # fmt: skip
    host.env_file.write_text(
        "\n".join(line for line in host.env_file.read_text().splitlines()
                  if not line.startswith("BASE_DIRECTORY=")) + "\n"
    )  # fmt: skip
    with pytest.raises(OpsError, match=r"sets no place to restore data .*BASE_DIRECTORY"):
        restore_backup(archive, "data", host.sources(), key=host.key())
    assert list(elsewhere.iterdir()) == []


def test_a_link_planted_at_the_staging_path_is_refused(host, tmp_path, monkeypatch) -> None:
    """Whoever can write the target's parent (the service user) plants a link where the staging
    directory will be: mkdir never follows it, nothing is written outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = create_backup(host.sources()).path
    monkeypatch.setattr(restore_module.secrets, "token_hex", lambda size: "guessed")
    stamp = "20260101T000000.000Z"
    (host.state / f".data.restore-{stamp}-guessed").symlink_to(outside)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(OpsError, match="cannot create the staging directory"):
        restore_backup(archive, "data", host.sources(), now=now, key=host.key())
    assert list(outside.iterdir()) == []
    assert (host.data / "docs" / "a.txt").read_text() == "alpha\n" * 100


def test_a_staging_directory_swapped_for_a_link_while_restoring_writes_nothing_outside(
    host, tmp_path, monkeypatch
) -> None:
    """The link goes in after the directory was made: writes go through the descriptor of the
    directory made, and the swap refuses the path that no longer names it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = create_backup(host.sources()).path
    (host.data / "docs" / "a.txt").write_text("current\n")
    made = restore_module._make_staging

    def make_then_swap(target) -> None:
        made(target)
        target.staging.rename(tmp_path / "moved-away")
        target.staging.symlink_to(outside)

    monkeypatch.setattr(restore_module, "_make_staging", make_then_swap)
    with pytest.raises(OpsError, match="was replaced meanwhile"):
        restore_backup(archive, "data", host.sources(), key=host.key())
    assert list(outside.iterdir()) == []
    assert (host.data / "docs" / "a.txt").read_text() == "current\n"
    assert (tmp_path / "moved-away" / "docs" / "a.txt").exists()  # written where it was made


def test_setuid_setgid_and_sticky_bits_are_never_restored(host) -> None:
    host.backups.mkdir()
    archive = craft_archive(
        host.backups / "modes.tar.gz.age",
        [member("data", kind=tarfile.DIRTYPE, mode=0o755),
         member("data/shared", kind=tarfile.DIRTYPE, mode=0o3777),
         member("data/shared/tool", b"#!/bin/sh\n", mode=0o6755)],
        roots={"data": "/ignored"}, key=host.key(),
    )  # fmt: skip
    result = restore_backup(archive, "data", host.sources(), key=host.key())
    assert (host.data / "shared").stat().st_mode & 0o7777 == 0o777
    assert (host.data / "shared" / "tool").stat().st_mode & 0o7777 == 0o755
    assert sum("setuid/setgid/sticky bits not restored" in w for w in result.warnings) == 2


def test_no_secret_is_in_clear_in_a_backup_nor_its_copy(host, tmp_path) -> None:
    made = create_backup(host.sources(), level=0)  # stored: the plaintext holds it verbatim
    assert TOKEN.encode() in decrypt(made.path, host.key())
    copy = tmp_path / "controller" / made.name
    copy.parent.mkdir()
    shutil.copy2(made.path, copy)
    identity = host.identity_file.read_text().split()[-1].encode()
    for path in (made.path, copy, *host.backups.iterdir()):
        content = path.read_bytes()
        assert TOKEN.encode() not in content and identity not in content, path
    # no plaintext scratch file left beside it
    assert sorted(p.name for p in host.backups.iterdir()) == [made.name, made.name + ".verify.json"]


def test_create_without_an_identity_writes_nothing_and_says_how(host, capsys) -> None:
    host.identity_file.unlink()
    assert main(["backup", "create", "--env-file", str(host.env_file)]) == 2
    err = capsys.readouterr().err
    assert "no backup identity at" in err and "age-keygen" in err and "Traceback" not in err
    assert not host.backups.exists() or list(host.backups.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "mode", "message"),
    [
        ("AGE-SECRET-KEY-1NOTAKEYATALLQQQQ\n", 0o600, "not a valid age X25519 identity"),
        ("# nothing here\n", 0o600, "holds no age identities"),
        (None, 0o644, "open to others (mode 0644)"),
    ],
)
def test_a_bad_identity_file_is_a_clear_error_that_never_shows_it(
    host, capsys, content, mode, message
) -> None:
    secret = host.identity_file.read_text()
    if content is not None:
        host.identity_file.write_text(content)
        secret = content
    host.identity_file.chmod(mode)
    assert main(["backup", "create", "--env-file", str(host.env_file)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert secret.strip().splitlines()[-1] not in err


def test_a_create_that_fails_while_encrypting_leaves_nothing_behind(host, monkeypatch) -> None:
    def fail(plain, handle, key):
        raise OpsError("cannot encrypt the backup: disk full")

    monkeypatch.setattr("mcp_mesh_sdk.backup.create.encrypt_to", fail)
    with pytest.raises(OpsError, match="disk full"):
        create_backup(host.sources())
    assert list(host.backups.iterdir()) == []  # neither the archive nor any plaintext


def test_verify_without_the_identity_says_what_is_missing(host, capsys) -> None:
    archive = create_backup(host.sources()).path
    host.identity_file.unlink()
    assert main(["backup", "verify", str(archive), "--env-file", str(host.env_file)]) == 1
    out = capsys.readouterr().out
    assert "no backup identity to open it" in out and "--identity-file" in out


def test_no_decrypting_process_outlives_a_read(host) -> None:
    """Listing reads only each manifest: the decrypter stopped early is gone, not left running."""
    import psutil

    from mcp_mesh_sdk.backup.catalog import list_backups

    archive = create_backup(host.sources()).path
    archive.with_name(archive.name + ".verify.json").unlink()  # the listing must open it
    assert list_backups(host.backups, host.key())[0].created_at
    assert verify_archive(archive, host.key()).ok
    assert psutil.Process().children(recursive=True) == []
