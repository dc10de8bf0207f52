import sqlite3

import pytest

from mcp_mesh_sdk.registry.store import AgentStore, NotYours


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def make_store(tmp_path, clock: FakeClock) -> AgentStore:
    # HEALTH_INTERVAL 30 s x 3 missed intervals; kept 600 s once stale.
    return AgentStore(tmp_path / "registry.db", stale_after=90, retention=600, clock=clock)


def statuses(store: AgentStore) -> dict[str, str]:
    return {agent.name: agent.status for agent in store.list()}


def test_agent_goes_stale_after_missed_heartbeats_and_healthy_when_it_returns(tmp_path) -> None:
    clock = FakeClock()
    store = make_store(tmp_path, clock)
    store.register("a1", "10.0.0.1", 8080, "1.0.0", ["read_file"])
    clock.now += 90
    assert statuses(store) == {"a1": "healthy"}
    clock.now += 1
    assert statuses(store) == {"a1": "stale"}
    assert [a.name for a in store.list(status="stale")] == ["a1"]
    assert store.list(status="healthy") == []
    assert store.heartbeat("a1") is not None
    assert statuses(store) == {"a1": "healthy"}


def test_sweep_removes_agents_only_after_retention(tmp_path) -> None:
    clock = FakeClock()
    store = make_store(tmp_path, clock)
    store.register("old", "h1", 8080, "1.0.0", [])
    clock.now += 90 + 600
    assert store.sweep() == 0
    clock.now += 1
    assert store.list() == []  # not listed even before the sweep runs
    assert store.sweep() == 1
    assert store.heartbeat("old") is None  # the agent must register again


def test_reregistration_keeps_first_seen_and_updates_fields(tmp_path) -> None:
    clock = FakeClock()
    store = make_store(tmp_path, clock)
    first = store.register("a1", "h1", 8080, "1.0.0", ["x"])
    clock.now += 10
    again = store.register("a1", "h2", 9090, "1.1.0", ["x", "y"])
    assert again.first_seen == first.first_seen
    assert (again.host, again.port, again.version) == ("h2", 9090, "1.1.0")
    assert again.capabilities == ("x", "y")
    assert again.last_heartbeat == clock.now


def test_rows_survive_a_restart(tmp_path) -> None:
    clock = FakeClock()
    store = make_store(tmp_path, clock)
    store.register("a1", "h1", 8080, "1.0.0", [])
    store.close()
    reopened = make_store(tmp_path, clock)
    assert [a.name for a in reopened.list()] == ["a1"]


def test_filters_by_name_and_version(tmp_path) -> None:
    store = make_store(tmp_path, FakeClock())
    store.register("a1", "h1", 8080, "1.0.0", [])
    store.register("a2", "h2", 8080, "2.0.0", [])
    assert [a.name for a in store.list(version="2.0.0")] == ["a2"]
    assert [a.name for a in store.list(name="a1")] == ["a1"]
    assert store.deregister("a1") is True
    assert store.deregister("a1") is False


KEY, OTHER_KEY = "k" * 43, "o" * 43


def test_a_bound_name_changes_only_with_its_key(tmp_path) -> None:
    store = make_store(tmp_path, FakeClock())
    assert store.register("a1", "h1", 8080, "1.0.0", [], key=KEY).bound is True
    for key in (OTHER_KEY, None):
        with pytest.raises(NotYours):
            store.register("a1", "attacker", 9999, "6.6.6", [], key=key)
        with pytest.raises(NotYours):
            store.heartbeat("a1", key=key)
        with pytest.raises(NotYours):
            store.deregister("a1", key=key)
    [entry] = store.list()
    assert (entry.host, entry.port, entry.version) == ("h1", 8080, "1.0.0")
    assert store.heartbeat("a1", key=KEY) is not None


def test_the_store_keeps_a_digest_of_the_key_never_the_key(tmp_path) -> None:
    store = make_store(tmp_path, FakeClock())
    store.register("a1", "h1", 8080, "1.0.0", [], key=KEY)
    store.close()
    assert KEY.encode() not in b"".join(path.read_bytes() for path in tmp_path.iterdir())


def test_forget_drops_entry_and_binding_so_the_name_binds_anew(tmp_path) -> None:
    store = make_store(tmp_path, FakeClock())
    store.register("a1", "h1", 8080, "1.0.0", [], key=KEY)
    assert store.forget("a1") == (True, True)
    assert store.list() == []
    assert store.register("a1", "h2", 8080, "1.0.0", [], key=OTHER_KEY).host == "h2"
    assert store.forget("ghost") == (False, False)


def test_a_database_of_an_older_release_is_used_as_it_is_and_stays_usable_for_it(
    tmp_path,
) -> None:
    path = tmp_path / "registry.db"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE agents (name TEXT PRIMARY KEY, host TEXT NOT NULL, port INTEGER NOT NULL,"
        " version TEXT NOT NULL, capabilities TEXT NOT NULL, first_seen REAL NOT NULL,"
        " last_heartbeat REAL NOT NULL)"
    )
    clock = FakeClock()
    old.execute("INSERT INTO agents VALUES ('a1', 'h1', 8080, '0.9', '[]', ?, ?)", (clock(),) * 2)
    old.commit()
    old.close()

    store = make_store(tmp_path, clock)
    [legacy] = store.list()
    assert (legacy.name, legacy.bound) == ("a1", False)
    assert store.heartbeat("a1") is not None  # the old agent, without a key
    assert store.register("a1", "h1", 8080, "1.0.0", [], key=KEY).bound is True
    store.close()

    older_release = sqlite3.connect(path)  # what the older code does with the same file
    older_release.execute(
        "INSERT INTO agents VALUES ('a2', 'h2', 8080, '0.9', '[]', ?, ?)", (clock(),) * 2
    )
    rows = older_release.execute("SELECT * FROM agents ORDER BY name").fetchall()
    assert [len(row) for row in rows] == [7, 7]
    older_release.close()
