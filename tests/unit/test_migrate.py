import itertools
import json
import textwrap

import pytest

from mcp_mesh_sdk import migrate
from mcp_mesh_sdk.cli import main
from mcp_mesh_sdk.errors import OpsError
from mcp_mesh_sdk.incidents import IncidentDetector, IncidentStore

_counter = itertools.count()

APPEND = """
from pathlib import Path
ID = "{id}"
DESCRIPTION = "append {id}"
def up(state_dir: Path) -> None:
    {fail}
    with (state_dir / "log.txt").open("a") as f:
        f.write("+{id}\\n")
def down(state_dir: Path) -> None:
    with (state_dir / "log.txt").open("a") as f:
        f.write("-{id}\\n")
"""


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A throw-away migrations package; returns (name, add_module)."""
    name = f"fake_migrations_{next(_counter)}"
    root = tmp_path / "pkgs" / name
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))

    def add(migration_id: str, fail: bool = False) -> None:
        body = APPEND.format(
            id=migration_id, fail="raise RuntimeError('disk on fire')" if fail else "pass"
        )
        (root / f"m{migration_id}.py").write_text(textwrap.dedent(body))

    return name, add


def log_of(state) -> list[str]:
    path = state / "log.txt"
    return path.read_text().split() if path.exists() else []


def test_up_applies_in_order_and_twice_changes_nothing(tmp_path, package) -> None:
    name, add = package
    add("0002_second")
    add("0001_first")
    state = tmp_path / "state"
    outcome = migrate.upgrade(state, package=name)
    assert [step["id"] for step in outcome.ran] == ["0001_first", "0002_second"]
    assert json.loads((state / "applied_migrations.json").read_text()) == [
        "0001_first",
        "0002_second",
    ]
    assert migrate.schema_version(state) == 2
    again = migrate.upgrade(state, package=name)
    assert again.ran == []
    assert log_of(state) == ["+0001_first", "+0002_second"]


def test_to_stops_early_and_rollback_undoes_newest_first(tmp_path, package) -> None:
    name, add = package
    for migration_id in ("0001_a", "0002_b", "0003_c"):
        add(migration_id)
    state = tmp_path / "state"
    migrate.upgrade(state, to="2", package=name)
    assert migrate.read_applied(state) == ["0001_a", "0002_b"]
    migrate.upgrade(state, package=name)
    migrate.rollback(state, package=name)  # the last one only
    assert migrate.read_applied(state) == ["0001_a", "0002_b"]
    migrate.rollback(state, to="0", package=name)
    assert migrate.read_applied(state) == []
    assert log_of(state) == ["+0001_a", "+0002_b", "+0003_c", "-0003_c", "-0002_b", "-0001_a"]


def test_failing_migration_stops_and_the_list_stays_true(tmp_path, package) -> None:
    name, add = package
    add("0001_ok")
    add("0002_broken", fail=True)
    add("0003_later")
    state = tmp_path / "state"
    with pytest.raises(migrate.MigrationFailed, match=r"0002_broken.*disk on fire") as caught:
        migrate.upgrade(state, package=name)
    assert caught.value.exit_code != 0
    assert migrate.read_applied(state) == ["0001_ok"]
    assert log_of(state) == ["+0001_ok"]


def test_a_module_added_later_is_discovered(tmp_path, package) -> None:
    name, add = package
    add("0001_first")
    state = tmp_path / "state"
    migrate.upgrade(state, package=name)
    add("0002_next_release")
    assert [s["id"] for s in migrate.upgrade(state, package=name).ran] == ["0002_next_release"]


def test_state_from_a_newer_release_is_refused(tmp_path, package) -> None:
    name, add = package
    add("0001_first")
    state = tmp_path / "state"
    state.mkdir()
    (state / "applied_migrations.json").write_text('["0001_first", "0009_future"]')
    with pytest.raises(OpsError, match=r"0009_future.*newer release"):
        migrate.upgrade(state, package=name)


def test_unknown_target_is_refused(tmp_path, package) -> None:
    name, add = package
    add("0001_first")
    with pytest.raises(OpsError, match="no migration"):
        migrate.upgrade(tmp_path, to="0007", package=name)


SPEC_RECORD = {
    "id": "INC-20240101-000000",
    "title": "High Memory Usage",
    "description": "Memory usage is 95.0%",
    "severity": "P2_High",
    "status": "open",
    "created_at": "2024-01-01T00:00:00",
    "assigned_to": "on-call-engineer",
    "components_affected": ["system"],
    "actions_taken": [{"timestamp": "2024-01-01T00:01:00", "action": "paged"}],
    "resolution": "",
}


def test_real_incident_migration_round_trip(tmp_path, capsys) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "incidents.jsonl").write_text(json.dumps(SPEC_RECORD) + "\nnot json\n")
    assert IncidentStore(state).all() == []  # the old shape is not readable as is

    assert main(["migrate", "--json", "--state-dir", str(state)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert "0001_incident_fields" in document["applied"]
    assert document["schema_version"] == document["latest_schema_version"] >= 1
    [incident] = IncidentStore(state).all()
    assert (incident.cause, incident.components) == ("memory", ["system"])
    assert incident.actions == ["2024-01-01T00:01:00 paged"]
    # the open memory incident is recognised: no duplicate is opened
    assert IncidentDetector(IncidentStore(state)).check({}, {"memory_percent": 99}) == []

    assert main(["migrate", "--rollback", "--to", "0", "--state-dir", str(state)]) == 0
    lines = (state / "incidents.jsonl").read_text().splitlines()
    restored = json.loads(lines[0])
    assert restored["components_affected"] == ["system"]
    assert "cause" not in restored
    assert lines[1] == "not json"


def test_status_changes_nothing(tmp_path, capsys) -> None:
    assert main(["migrate", "--status", "--state-dir", str(tmp_path)]) == 0
    assert "pending  0001_incident_fields" in capsys.readouterr().out
    assert not (tmp_path / "applied_migrations.json").exists()
