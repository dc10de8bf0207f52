"""`backup report`: rows, ages and the verdict that playbooks/verify_backup.yml prints."""

import io
import json
import shutil
from datetime import UTC, datetime, timedelta

import pytest
from test_backup_helpers import make_host

from mcp_mesh_sdk.backup.create import create_backup
from mcp_mesh_sdk.backup.report import COPY, HOST, Row, judge, make_report, merge_report
from mcp_mesh_sdk.backup.report_table import render_table
from mcp_mesh_sdk.cli import main

START = datetime(2026, 1, 1, tzinfo=UTC)


def damage(path) -> None:
    """Cut the archive in half: it fails whether or not a sidecar recorded its hash."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.fixture
def host(tmp_path):
    return make_host(tmp_path)


def identity(host) -> list[str]:
    return ["--identity-file", str(host.identity_file)]


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["backup", "report", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_every_backup_verified_with_its_age_and_the_newest_young_enough(host) -> None:
    older = create_backup(host.sources(), now=START)
    newer = create_backup(host.sources(), now=START + timedelta(hours=20))
    report = make_report(
        host.backups, [], host="agent1", now=START + timedelta(hours=23), key=host.key()
    )
    assert [(r.backup, r.age_hours, r.verified) for r in report.rows] == [
        (newer.name, 3.0, True),
        (older.name, 23.0, True),
    ]
    assert all(r.host == "agent1" and r.location == HOST and r.size for r in report.rows)
    assert report.verdict.ok
    assert report.verdict.newest and report.verdict.newest.backup == newer.name
    assert report.verdict.message == (
        f"agent1: every backup verifies (2); newest {newer.name}, 3.0 h old"
    )


def test_a_newest_backup_older_than_the_limit_fails(host) -> None:
    made = create_backup(host.sources(), now=START)
    late = START + timedelta(hours=30)
    report = make_report(host.backups, [], host="agent1", now=late, key=host.key())
    assert not report.verdict.ok
    assert report.verdict.message == f"agent1: newest backup {made.name} is 30.0 h old (limit 26 h)"
    assert make_report(
        host.backups, [], "agent1", max_age_hours=48, now=late, key=host.key()
    ).verdict.ok


def test_the_command_exits_non_zero_when_the_newest_backup_is_too_old(host, capsys) -> None:
    create_backup(host.sources(), now=datetime.now(UTC) - timedelta(hours=30))
    code, out, _ = run(capsys, "--env-file", str(host.env_file), "--json")
    document = json.loads(out)
    assert code == 1
    assert document["verdict"]["ok"] is False
    assert 30 <= document["rows"][0]["age_hours"] < 31
    assert "limit 26 h" in document["verdict"]["message"]
    passing = ["--env-file", str(host.env_file), "--max-age-hours", "48"]
    assert run(capsys, *passing)[0] == 0


def test_a_damaged_archive_is_named_with_its_problem(host, capsys) -> None:
    good = create_backup(host.sources(), now=datetime.now(UTC) - timedelta(hours=2))
    bad = create_backup(host.sources(), now=datetime.now(UTC) - timedelta(hours=1))
    damage(bad.path)
    code, out, err = run(capsys, "--env-file", str(host.env_file), "--host", "agent3")
    assert code == 1
    assert "Traceback" not in err
    lines = out.splitlines()
    assert lines[0].split() == ["WHERE", "BACKUP", "AGE(h)", "SIZE", "VERIFIED"]
    bad_line = next(line for line in lines if bad.name in line)
    assert bad_line.split()[-1] == "NO"
    problem = lines[lines.index(bad_line) + 1]
    assert problem.startswith("       ") and "not authentic" in problem
    assert next(line for line in lines if good.name in line).split()[-1] == "yes"
    assert lines[-1] == f"agent3: backups that do not verify: {bad.name}"

    document = json.loads(run(capsys, "--env-file", str(host.env_file), "--json")[1])
    row = next(r for r in document["rows"] if r["backup"] == bad.name)
    assert row["verified"] is False and "cut short" in row["problem"]
    assert document["verdict"]["not_verified"] == [bad.name]


def test_an_empty_backup_directory_fails_with_a_clear_message(host, capsys) -> None:
    host.backups.mkdir()
    code, out, _ = run(
        capsys, "--output-dir", str(host.backups), "--host", "agent1", *identity(host)
    )
    assert code == 1
    assert out.strip() == f"agent1: no backups in {host.backups}"
    document = json.loads(
        run(capsys, "--output-dir", str(host.backups), "--json", *identity(host))[1]
    )
    assert document["rows"] == [] and document["verdict"]["ok"] is False


def test_copies_must_verify_but_do_not_count_for_age(host, tmp_path) -> None:
    made = create_backup(host.sources(), now=START)
    copies = tmp_path / "controller" / "agent1"
    copies.mkdir(parents=True)
    shutil.copy2(made.path, copies / made.name)
    now = START + timedelta(hours=1)
    report = make_report(host.backups, [copies], host="agent1", now=now, key=host.key())
    assert [(r.location, r.verified) for r in report.rows] == [(HOST, True), (COPY, True)]
    assert report.verdict.ok

    damage(copies / made.name)
    report = make_report(host.backups, [copies], host="agent1", now=now, key=host.key())
    assert report.verdict.message == f"agent1: backups that do not verify: {made.name}"

    shutil.copy2(made.path, copies / made.name)
    shutil.rmtree(host.backups)
    report = make_report(host.backups, [copies], host="agent1", now=now, key=host.key())
    assert not report.verdict.ok and "no backups in" in report.verdict.message


def test_the_controller_completes_the_hosts_report_from_standard_input(
    host, tmp_path, capsys, monkeypatch
) -> None:
    """What verify_backup.yml does: the host reports, the controller adds its copies."""
    made = create_backup(host.sources(), now=datetime.now(UTC) - timedelta(hours=5))
    on_host = run(capsys, "--env-file", str(host.env_file), "--host", "agent2", "--json")[1]
    copies = tmp_path / "controller" / "agent2"
    copies.mkdir(parents=True)
    shutil.copy2(made.path, copies / made.name)
    damage(copies / made.name)
    monkeypatch.setattr("sys.stdin", io.StringIO(on_host))
    code, out, _ = run(
        capsys, "--from-json", "-", "--copies", str(copies), "--json", *identity(host)
    )
    document = json.loads(out)
    assert code == 1
    assert document["host"] == "agent2"
    assert [(r["location"], r["verified"]) for r in document["rows"]] == [
        ("host", True),
        ("copy", False),
    ]
    assert document["verdict"]["message"] == f"agent2: backups that do not verify: {made.name}"


def test_ages_of_a_given_report_are_measured_again() -> None:
    document = {
        "host": "agent1",
        "backup_dir": "/backups",
        "rows": [{"backup": "b1", "verified": True, "created_at": "2026-01-01T00:00:00.000Z"}],
    }
    report = merge_report(document, [], now=START + timedelta(hours=27))
    assert report.rows[0].age_hours == 27.0
    assert report.verdict.message == "agent1: newest backup b1 is 27.0 h old (limit 26 h)"


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("not json", "standard input is not JSON"),
        ("[1, 2]", "not what `backup report --json` prints"),
        ('{"rows": [{"verified": true}]}', "names no backup"),
        ('{"rows": [{"backup": "b", "verified": "yes"}]}', "'verified' must be true or false"),
    ],
)
def test_bad_input_is_a_clear_error(capsys, monkeypatch, stdin, message) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code, out, err = run(capsys, "--from-json", "-")
    assert code == 2
    assert message in err and "Traceback" not in err
    assert out == ""


def test_a_limit_of_zero_hours_is_refused(host, capsys) -> None:
    code, _, err = run(capsys, "--output-dir", str(host.backups), "--max-age-hours", "0")
    assert code == 2 and "--max-age-hours must be more than 0" in err


def _row(name: str, verified: bool = True, problem: str = "") -> Row:
    return Row(
        host="h",
        location=COPY,
        backup=name,
        path="/x/" + name,
        created_at="2026-01-01T00:00:00.000Z",
        age_hours=1234.5,
        size=123_456_789_012,
        verified=verified,
        problem=problem,
    )


def test_the_table_fits_80_columns_even_for_long_names() -> None:
    long_name = (
        "mcp-mesh-" + "a-very-long-host-name-in-a-datacentre" + "-20260101T000000.000Z.tar.gz"
    )
    problem = "corrupt: /var/backups/mcp-mesh/" + long_name + " is corrupt or truncated: " * 3
    rows = [_row(long_name), _row(long_name + "x", verified=False, problem=problem)]
    report = merge_report({"host": "h", "rows": [r.to_json() for r in rows]}, [], now=START)
    text = render_table(report)
    table = text.splitlines()[:-1]  # the verdict is one line, however long
    assert max(len(line) for line in table) <= 80
    assert table[1].startswith("copy   …") and table[1].split()[1].endswith("000Z.tar.gz")
    assert "123.5 GB" in table[1]
    assert len([line for line in table if line.startswith("       ")]) >= 2  # problem wrapped


def test_the_verdict_names_each_damaged_backup_once() -> None:
    rows = [_row("b1", verified=False), _row("b1", verified=False), _row("b2", verified=False)]
    verdict = judge("h", rows, "/backups", 26)
    assert verdict.not_verified == ["b1", "b2"]
    assert verdict.message == "h: backups that do not verify: b1, b2; no backups in /backups"
