"""The registry on PostgreSQL: real `mcp-mesh-sdk registry` processes on loopback sharing one
throwaway PostgreSQL 15 cluster (the `postgres` fixture)."""

import json
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
from postgres import PASSWORD
from processes import Service, free_port, http

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
TOKEN = "integration-registry-token-postgres"


def migrate(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_mesh_sdk", "migrate", "--registry-database", *extra],
        env={"PATH": "/usr/bin:/bin", "MCP_MESH_REGISTRY_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=30,
    )


def start_registry(
    tmp_path,
    url: str,
    label: str,
    env_name: str = "DATABASE_URL",
    ready: int = 200,
    **extra: str,
) -> tuple:
    port = free_port()
    env = {
        "MCP_MESH_REGISTRY_HOST": "127.0.0.1",
        "MCP_MESH_REGISTRY_PORT": str(port),
        "MCP_MESH_REGISTRY_DB": str(tmp_path / f"unused-{label}.db"),
        "MCP_MESH_REGISTRY_TOKEN": TOKEN,
        env_name: url,
        "LOG_LEVEL": "DEBUG",
        **extra,
    }
    service = Service(["registry"], env, tmp_path / f"registry-{label}.log").start()
    base = f"http://127.0.0.1:{port}"
    service.wait_http(f"{base}/ready", want=ready)
    return service, base


def call(method: str, url: str, key: str | None = None, body=None) -> tuple[int, object]:
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {TOKEN}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("X-Mesh-Agent-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")


def stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def listing(base: str) -> list[dict]:
    status, body = call("GET", f"{base}/agents")
    assert status == 200, body
    return body["agents"]


def test_migrations_apply_once_and_twice_is_harmless(postgres, tmp_path) -> None:
    url = postgres.create_database("registry")
    # two migrates at once (two replicas upgraded together): one applies, the other waits
    first, second = (
        subprocess.Popen(
            [sys.executable, "-m", "mcp_mesh_sdk", "migrate", "--registry-database", "--json"],
            env={"PATH": "/usr/bin:/bin", "MCP_MESH_REGISTRY_DATABASE_URL": url},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    )
    outcomes = []
    for process in (first, second):
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        outcomes.append(json.loads(out))
    assert sorted(len(o["ran"]) for o in outcomes) == [0, 1]
    assert all(o["schema_version"] == 1 and o["pending"] == [] for o in outcomes)

    again = migrate(url, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["ran"] == []
    status = migrate(url, "--status")
    assert "applied  0001_agents" in status.stdout
    assert PASSWORD not in status.stdout + status.stderr + again.stdout + again.stderr
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations").fetchall()
    assert rows == [(1, "agents")]


def test_registry_refuses_an_unmigrated_database(postgres, tmp_path) -> None:
    url = postgres.create_database("fresh")
    port = free_port()
    env = {
        "MCP_MESH_REGISTRY_HOST": "127.0.0.1",
        "MCP_MESH_REGISTRY_PORT": str(port),
        "MCP_MESH_REGISTRY_TOKEN": TOKEN,
        "MCP_MESH_REGISTRY_DATABASE_URL": url,
    }
    service = Service(["registry"], env, tmp_path / "refused.log").start()
    try:
        assert service.process.wait(30) != 0
    finally:
        service.stop()
    log = service.log()
    assert "migrate --registry-database" in log
    assert PASSWORD not in log
    assert "Traceback" not in log


def test_two_registries_under_1000_concurrent_writes_lose_and_double_nothing(
    postgres, tmp_path
) -> None:
    url = postgres.create_database("registry")
    assert migrate(url).returncode == 0
    a, base_a = start_registry(tmp_path, url, "a")
    b, base_b = start_registry(tmp_path, url, "b", env_name="MCP_MESH_REGISTRY_DATABASE_URL")
    try:
        rng = random.Random(19)
        agents = [f"agent-{i:03d}" for i in range(100)]
        keys = {name: f"key-{name}-" + "k" * 32 for name in agents}
        # per agent: a registration on each registry and eight heartbeats, 1,000 in all: the
        # first registrations at once, then the rest at once, one agent's nine calls next to
        # each other in the queue so that they run at the same time on both registries
        first = [("register", name) for name in agents]
        ops = []
        for name in agents:
            mine = [(kind, name) for kind in ("register",) + ("beat",) * 8]
            rng.shuffle(mine)
            ops += mine
        seen: dict[str, list[float]] = {name: [] for name in agents}

        def register(name: str, base: str) -> None:
            body = {"name": name, "host": "127.0.0.1", "port": 9000, "version": "1.0",
                    "capabilities": ["files"]}  # fmt: skip
            status, answer = call("POST", f"{base}/agents/register", keys[name], body)
            assert status == 200, answer
            seen[name].append(stamp(answer["agent"]["last_heartbeat"]))

        def run(op: tuple[str, str], index: int) -> None:
            kind, name = op
            base = (base_a, base_b)[index % 2]
            if kind == "register":
                register(name, base)
                return
            status, answer = call("POST", f"{base}/agents/{name}/heartbeat", keys[name])
            if status == 404:  # not registered yet: what an agent does, register again
                register(name, base)
                return
            assert status == 200, answer
            seen[name].append(stamp(answer["agent"]["last_heartbeat"]))

        # contested first registrations: two keys for one name, one on each registry
        contested = [f"contested-{i:02d}" for i in range(25)]

        def contest(name: str) -> list[tuple[int, str]]:
            body = {"name": name, "host": "127.0.0.1", "port": 9001, "version": "1.0"}
            with ThreadPoolExecutor(2) as two:
                futures = [
                    two.submit(call, "POST", f"{base}/agents/register", f"{who}-" + "c" * 32, body)
                    for who, base in (("first", base_a), ("second", base_b))
                ]
            return [
                (f.result()[0], who) for f, who in zip(futures, ("first", "second"), strict=True)
            ]

        started = time.monotonic()
        with ThreadPoolExecutor(64) as pool:
            for result in [pool.submit(run, op, i) for i, op in enumerate(first)]:
                result.result()
            results = [pool.submit(run, op, i) for i, op in enumerate(ops)]
            contests = [pool.submit(contest, name) for name in contested]
            for result in results:
                result.result()
        elapsed = time.monotonic() - started

        listed_a, listed_b = listing(base_a), listing(base_b)
        names_a = [agent["name"] for agent in listed_a]
        assert len(names_a) == len(set(names_a)), "an agent is listed twice"
        assert listed_a == listed_b, "the two registries disagree"
        expected = set(agents) | set(contested)
        assert set(names_a) == expected, f"lost: {expected - set(names_a)}"
        by_name = {agent["name"]: agent for agent in listed_a}
        for name in agents:  # the newest heartbeat any call saw is the one kept: none lost
            kept = stamp(by_name[name]["last_heartbeat"])
            assert abs(kept - max(seen[name])) < 1e-5, (name, kept, max(seen[name]))
            assert by_name[name]["bound"] and by_name[name]["status"] == "healthy"

        for name, future in zip(contested, contests, strict=True):
            outcome = sorted(future.result())
            assert [status for status, _ in outcome] == [200, 409], (name, outcome)
            winner = next(who for status, who in outcome if status == 200)
            loser = next(who for status, who in outcome if status == 409)
            url_beat = f"{base_b}/agents/{name}/heartbeat"
            assert call("POST", url_beat, f"{winner}-" + "c" * 32)[0] == 200
            assert call("POST", url_beat, f"{loser}-" + "c" * 32)[0] == 403
        assert elapsed < 45, f"1,000 writes took {elapsed:.1f} s"
    finally:
        a.stop()
        b.stop()
    for service in (a, b):
        assert "Traceback" not in service.log()
        assert PASSWORD not in service.log()


def test_database_down_answers_503_with_a_reason_then_recovers(postgres, tmp_path) -> None:
    url = postgres.create_database("registry")
    assert migrate(url).returncode == 0
    registry, base = start_registry(tmp_path, url, "a")
    key = "agent-own-key-" + "k" * 32
    body = {"name": "survivor", "host": "127.0.0.1", "port": 9000, "version": "1.0"}
    try:
        assert call("POST", f"{base}/agents/register", key, body)[0] == 200

        postgres.stop()
        status, answer = call("POST", f"{base}/agents/survivor/heartbeat", key)
        assert status == 503, answer
        assert answer["error"] == "registry database unavailable"
        assert "PostgreSQL" in answer["reason"], answer
        assert PASSWORD not in json.dumps(answer)
        assert call("GET", f"{base}/agents")[0] == 503
        ready = http("GET", f"{base}/ready")
        assert ready[0] == 503 and ready[1]["ready"] is False
        assert http("GET", f"{base}/health")[0] == 200  # the process itself is fine
        metrics = http("GET", f"{base}/metrics", token=TOKEN)
        assert metrics[0] == 200 and "mcp_mesh_registry_database_up 0.0" in metrics[1]
        time.sleep(3)  # down for a few seconds

        postgres.start()
        back = time.monotonic()
        while http("GET", f"{base}/ready")[0] != 200:
            assert time.monotonic() < back + 15, "the registry did not recover in 15 s"
            time.sleep(0.2)
        status, answer = call("POST", f"{base}/agents/survivor/heartbeat", key)
        assert status == 200, answer
        assert [agent["name"] for agent in listing(base)] == ["survivor"]
    finally:
        registry.stop()
    log = registry.log()
    assert "registry database unavailable" in log
    assert "Traceback" not in log
    assert PASSWORD not in log


def test_registry_started_while_the_database_is_down_serves_once_it_is_up(
    postgres, tmp_path
) -> None:
    url = postgres.create_database("registry")
    assert migrate(url).returncode == 0
    postgres.stop()
    registry, base = start_registry(tmp_path, url, "early", ready=503)
    key = "agent-own-key-" + "k" * 32
    body = {"name": "early-bird", "host": "127.0.0.1", "port": 9000, "version": "1.0"}
    try:
        status, answer = call("POST", f"{base}/agents/register", key, body)
        assert status == 503 and answer["error"] == "registry database unavailable", answer
        postgres.start()
        deadline = time.monotonic() + 30
        while http("GET", f"{base}/ready")[0] != 200:
            assert time.monotonic() < deadline, "the registry did not recover"
            time.sleep(0.2)
        assert call("POST", f"{base}/agents/register", key, body)[0] == 200
    finally:
        registry.stop()
    assert "Traceback" not in registry.log()
    assert PASSWORD not in registry.log()


def test_forget_drops_the_binding_in_the_shared_database(postgres, tmp_path) -> None:
    url = postgres.create_database("registry")
    assert migrate(url).returncode == 0
    registry, base = start_registry(tmp_path, url, "a")
    body = {"name": "rebuilt", "host": "127.0.0.1", "port": 9000, "version": "1.0"}
    old_key, new_key = "old-key-" + "o" * 32, "new-key-" + "n" * 32
    try:
        assert call("POST", f"{base}/agents/register", old_key, body)[0] == 200
        assert call("POST", f"{base}/agents/register", new_key, body)[0] == 409
        done = subprocess.run(
            [sys.executable, "-m", "mcp_mesh_sdk", "registry", "forget", "rebuilt", "--json"],
            env={"PATH": "/usr/bin:/bin", "DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {
            "name": "rebuilt",
            "entry_removed": True,
            "binding_removed": True,
        }
        assert call("POST", f"{base}/agents/register", new_key, body)[0] == 200
    finally:
        registry.stop()


def test_expiry_with_two_registries_keeps_the_live_and_drops_the_silent(postgres, tmp_path) -> None:
    url = postgres.create_database("registry")
    assert migrate(url).returncode == 0
    quick = {"HEALTH_INTERVAL": "0.5", "MCP_MESH_REGISTRY_STALE_INTERVALS": "2"}
    quick["MCP_MESH_REGISTRY_RETENTION"] = "1"  # stale after 1 s, deleted 1 s after that
    a, base_a = start_registry(tmp_path, url, "a", **quick)
    b, base_b = start_registry(tmp_path, url, "b", **quick)
    keys = {name: f"key-{name}-" + "k" * 32 for name in ("alive", "silent")}
    try:
        for name, base in (("alive", base_a), ("silent", base_b)):
            body = {"name": name, "host": "127.0.0.1", "port": 9000, "version": "1.0"}
            assert call("POST", f"{base}/agents/register", keys[name], body)[0] == 200
        statuses: dict[str, set[str]] = {"alive": set(), "silent": set()}
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:  # alive beats on each registry in turn
            for base in (base_a, base_b):
                assert call("POST", f"{base}/agents/alive/heartbeat", keys["alive"])[0] == 200
                for agent in listing(base):
                    statuses[agent["name"]].add(agent["status"])
                time.sleep(0.1)
        assert statuses["alive"] == {"healthy"}
        assert statuses["silent"] >= {"healthy", "stale"}  # listed stale before it went
        for base in (base_a, base_b):
            assert [agent["name"] for agent in listing(base)] == ["alive"]
        assert call("POST", f"{base_a}/agents/silent/heartbeat", keys["silent"])[0] == 404
    finally:
        a.stop()
        b.stop()
