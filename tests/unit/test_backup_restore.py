import json
import tarfile

import pytest
from test_backup_helpers import craft_archive, make_host, member, snapshot

from mcp_mesh_sdk.backup import restore as restore_module
from mcp_mesh_sdk.backup.create import create_backup
from mcp_mesh_sdk.backup.restore import restore_backup
from mcp_mesh_sdk.cli import main
from mcp_mesh_sdk.errors import OpsError


def test_full_restore_brings_everything_back_and_keeps_a_rollback_copy(tmp_path) -> None:
    host = make_host(tmp_path)
    before_state, before_etc = snapshot(host.state), snapshot(host.env_file.parent)
    archive = create_backup(host.sources()).path
    (host.data / "docs" / "a.txt").write_text("damaged")
    (host.data / "secret.yaml").unlink()
    (host.state / "stray.txt").write_text("new since the backup")
    host.env_file.write_text(host.env_file.read_text() + "LOG_LEVEL=DEBUG\n")

    result = restore_backup(archive, "full", host.sources(), key=host.key())

    assert snapshot(host.state) == before_state
    assert snapshot(host.env_file.parent) == before_etc
    rollback = {t.root: t.rollback for t in result.targets}
    assert (rollback["state"] / "stray.txt").read_text() == "new since the backup"
    assert (rollback["state"] / "data" / "docs" / "a.txt").read_text() == "damaged"


def test_data_mode_touches_only_data(tmp_path) -> None:
    host = make_host(tmp_path)
    archive = create_backup(host.sources()).path
    (host.data / "docs" / "a.txt").write_text("damaged")
    (host.state / "incidents.jsonl").write_text("kept\n")
    restore_backup(archive, "data", host.sources(), key=host.key())
    assert (host.data / "docs" / "a.txt").read_text() == "alpha\n" * 100
    assert (host.state / "incidents.jsonl").read_text() == "kept\n"


def test_previous_rollback_copy_is_pruned(tmp_path) -> None:
    host = make_host(tmp_path)
    archive = create_backup(host.sources()).path
    restore_backup(archive, "data", host.sources(), key=host.key())
    restore_backup(archive, "data", host.sources(), key=host.key())
    copies = [p for p in host.state.iterdir() if p.name.startswith("data.pre-restore-")]
    assert len(copies) == 1


def _crafted_restore(tmp_path, members):
    host = make_host(tmp_path)
    (tmp_path / "incoming").mkdir()
    archive = craft_archive(
        tmp_path / "incoming" / "crafted.tar.gz.age", members, roots={"data": str(host.data)},
        key=host.key(),
    )  # fmt: skip
    before = snapshot(tmp_path)
    with pytest.raises(OpsError, match="refusing") as caught:
        restore_backup(archive, "data", host.sources(), key=host.key())
    assert snapshot(tmp_path) == before  # nothing changed anywhere, inside or outside
    return str(caught.value)


def test_traversal_member_is_refused(tmp_path) -> None:
    message = _crafted_restore(
        tmp_path,
        [member("data", kind=tarfile.DIRTYPE, mode=0o755),
         member("data/../../outside.txt", b"pwned")],
    )  # fmt: skip
    assert "outside.txt" in message
    assert not (tmp_path.parent / "outside.txt").exists()


def test_absolute_member_is_refused(tmp_path) -> None:
    _crafted_restore(
        tmp_path,
        [member("data", kind=tarfile.DIRTYPE, mode=0o755), member("/tmp/abs-evil.txt", b"x")],
    )


@pytest.mark.parametrize("target", ["../../../etc", "/etc/passwd", "docs/../../.."])
def test_link_pointing_out_is_refused(tmp_path, target) -> None:
    message = _crafted_restore(
        tmp_path,
        [member("data", kind=tarfile.DIRTYPE, mode=0o755),
         member("data/escape", kind=tarfile.SYMTYPE, link=target)],
    )  # fmt: skip
    assert "points outside" in message


def test_failure_after_staging_leaves_the_old_state_intact(tmp_path, monkeypatch) -> None:
    host = make_host(tmp_path)
    archive = create_backup(host.sources()).path
    (host.data / "docs" / "a.txt").write_text("current")
    host.env_file.write_text(host.env_file.read_text() + "# current\n")
    before = snapshot(tmp_path)
    real_swap = restore_module._swap_paths
    calls = []

    def swap_then_die(first, second):
        calls.append(second)
        if len(calls) == 2:  # config is swapped in; the crash hits while swapping state
            raise OSError(5, "simulated crash after staging")
        real_swap(first, second)

    monkeypatch.setattr(restore_module, "_swap_paths", swap_then_die)
    with pytest.raises(OpsError, match="previous state kept"):
        restore_backup(archive, "full", host.sources(), key=host.key())
    monkeypatch.setattr(restore_module, "_swap_paths", real_swap)
    assert snapshot(tmp_path) == before  # config swapped back; no staging or rollback left


def test_corrupt_archive_is_refused_before_anything_is_written(tmp_path) -> None:
    host = make_host(tmp_path)
    archive = create_backup(host.sources()).path
    archive.write_bytes(archive.read_bytes()[:-100])
    before = snapshot(host.state)
    with pytest.raises(OpsError, match="does not verify"):
        restore_backup(archive, "full", host.sources(), key=host.key())
    assert snapshot(host.state) == before


def test_archive_from_a_newer_schema_is_refused(tmp_path) -> None:
    host = make_host(tmp_path)
    archive = craft_archive(
        tmp_path / "future.tar.gz.age",
        [member("data", kind=tarfile.DIRTYPE, mode=0o755)],
        schema=999,
        roots={"data": str(host.data)},
        key=host.key(),
    )
    with pytest.raises(OpsError, match="schema 999 is newer"):
        restore_backup(archive, "data", host.sources(), key=host.key())


def test_cli_restore_latest_json(tmp_path, capsys) -> None:
    host = make_host(tmp_path)
    create_backup(host.sources())
    (host.data / "docs" / "a.txt").unlink()
    code = main(["backup", "restore", "latest", "--mode", "data", "--json",
                 "--env-file", str(host.env_file)])  # fmt: skip
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert [r["root"] for r in document["restored"]] == ["data"]
    assert (host.data / "docs" / "a.txt").exists()


def test_cli_unknown_backup_is_a_clear_error(tmp_path, capsys) -> None:
    host = make_host(tmp_path)
    code = main(["backup", "verify", "nope", "--env-file", str(host.env_file)])
    assert code != 0
    assert "no backup 'nope'" in capsys.readouterr().err


def test_leftover_of_an_interrupted_restore_is_reported_not_deleted(tmp_path) -> None:
    host = make_host(tmp_path)
    archive = create_backup(host.sources()).path
    leftover = host.state / ".data.restore-20250101T000000.000Z"
    leftover.mkdir()
    (leftover / "maybe-the-previous-data.txt").write_text("keep me")
    result = restore_backup(archive, "data", host.sources(), key=host.key())
    assert any(str(leftover) in warning for warning in result.warnings)
    assert (leftover / "maybe-the-previous-data.txt").read_text() == "keep me"
