"""Read-your-writes through the load balancer (issue 18), measured as docs/consistency.md states
the contract: the LB hashes each client's Authorization header onto one agent (consistent
hashing), so
- in steady state a client's calls all land on one agent: 0 read-after-write misses;
- while an agent is out (a rolling upgrade takes each out in turn) its clients move to others,
  and a round whose write and read straddle the move can miss; no other round misses, and no
  round misses when its write and read landed on the same agent.

Four clients (alice, bob, carol, dave: the lab's named clients) each write a file of their own
and read it back through the LB, round after round (bounded in time and count): for 60 s in
steady state, then during upgrade.yml to a new release and during rollback.yml back to the
session's release (with the fleet's load generator running too, so the rollout's first host gets
real traffic for its analysis). The figures (rounds, misses, failed calls, agents seen, per
client and in total) go to consistency.json in the test's folder and are printed.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.lab.fleet.loadgen import fleet_load, tool_answer
from tests.lab.fleet.releases import bump_patch, source_with_version

CLIENTS = ("alice", "bob", "carol", "dave")
STEADY_SECONDS = 60.0
PACE = 0.2  # seconds between a client's rounds: about 4 rounds (8 calls) a second each
MAX_ROUNDS = 5_000  # per client and phase
ROLLOUT_SECONDS = 600.0  # bound of a phase that runs a playbook
UPGRADE = "playbooks/upgrade.yml"
ROLLBACK = "playbooks/rollback.yml"
RELEASE_PATCH = 21  # the release upgraded to: session's patch + this (unique among lab tests)


@dataclass(frozen=True)
class Round:
    """One write of a new file and the read of it right after, by one client."""

    client: str
    started: float  # time.monotonic()
    outcome: str  # "hit", "miss" (the read did not see the write) or "failed" (no answer)
    write_server: str
    read_server: str
    detail: str


@dataclass
class ReadYourWrites:
    """The clients' rounds through `url`, each client in a thread of its own (bounded)."""

    url: str
    tokens: dict[str, str]  # client -> token
    context: Any
    max_seconds: float
    rounds: list[Round] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> ReadYourWrites:
        for client in self.tokens:
            thread = threading.Thread(target=self._client, args=(client,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _client(self, client: str) -> None:
        token, run = self.tokens[client], uuid.uuid4().hex[:12]
        deadline = time.monotonic() + self.max_seconds
        for number in range(MAX_ROUNDS):
            if self._stop.is_set() or time.monotonic() >= deadline:
                return
            self._record(self._round(client, token, f"consistency/{client}/{run}-{number}.txt"))
            self._stop.wait(PACE)

    def _round(self, client: str, token: str, path: str) -> Round:
        started, content = time.monotonic(), f"{client} {uuid.uuid4().hex}\n"
        wrote = tool_answer(
            self.url, token, "write_file", {"path": path, "content": content}, self.context
        )
        if not wrote.ok:
            return Round(client, started, "failed", wrote.server, "", wrote.detail)
        read = tool_answer(self.url, token, "read_file", {"path": path}, self.context)
        if read.ok and content.strip() in read.text:
            outcome = "hit"
        elif read.answered and (read.ok or "does not exist" in read.text):
            outcome = "miss"  # an answer, without the client's write
        else:
            outcome = "failed"
        return Round(client, started, outcome, wrote.server, read.server, read.detail)

    def _record(self, done: Round) -> None:
        with self._lock:
            self.rounds.append(done)

    def figures(self) -> dict[str, Any]:
        """Per client and in total: rounds, misses, failed rounds, agents that served it."""
        per_client: dict[str, Any] = {}
        for client in self.tokens:
            mine = [done for done in self.rounds if done.client == client]
            per_client[client] = {
                "rounds": len(mine),
                "misses": sum(done.outcome == "miss" for done in mine),
                "failed": sum(done.outcome == "failed" for done in mine),
                "agents": sorted(
                    {done.write_server for done in mine if done.write_server}
                    | {done.read_server for done in mine if done.read_server}
                ),
            }
        total = {
            key: sum(figures[key] for figures in per_client.values())
            for key in ("rounds", "misses", "failed")
        }
        total["miss_ratio"] = round(total["misses"] / total["rounds"], 4) if total["rounds"] else 0
        return {"clients": per_client, "total": total}

    def misses(self) -> list[Round]:
        return [done for done in self.rounds if done.outcome == "miss"]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    figures: dict[str, Any] = {}
    yield figures
    path = tmp_path_factory.mktemp("consistency") / "consistency.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nread-your-writes figures ({path}):\n{json.dumps(figures, indent=2)}")


def clients_of(fleet: Any, max_seconds: float) -> ReadYourWrites:
    tokens = {name: fleet.clients[name] for name in CLIENTS}
    return ReadYourWrites(fleet.lb_url("/mcp"), tokens, fleet.ssl_context, max_seconds)


def record(report: dict[str, Any], phase: str, measured: ReadYourWrites, **extra: Any) -> None:
    report[phase] = {**measured.figures(), **extra}
    print(f"\n{phase}: {json.dumps(report[phase]['total'])}")


def assert_contract_during_a_rollout(measured: ReadYourWrites) -> None:
    """Misses only where a client moved between its write and its read (its agent was out)."""
    stayed = [done for done in measured.misses() if done.write_server == done.read_server]
    assert not stayed, f"misses on the agent that took the write: {[asdict(d) for d in stayed]}"
    failed = [done for done in measured.rounds if done.outcome == "failed"]
    assert not failed, f"{len(failed)} failed rounds, e.g. {[asdict(d) for d in failed[:3]]}"


def test_steady_state_every_client_reads_its_own_writes_from_one_agent(
    fleet: Any, report: dict[str, Any]
) -> None:
    with clients_of(fleet, STEADY_SECONDS) as measured:
        time.sleep(STEADY_SECONDS)
    record(report, "steady_state", measured, seconds=STEADY_SECONDS)
    figures = measured.figures()
    assert figures["total"]["rounds"] >= len(CLIENTS) * 60, figures["total"]  # 1 a second each
    assert figures["total"]["failed"] == 0, [asdict(d) for d in measured.rounds[:3]]
    assert figures["total"]["misses"] == 0, [asdict(d) for d in measured.misses()[:5]]
    # Affinity: each client's calls all landed on one agent.
    assert {client: len(each["agents"]) for client, each in figures["clients"].items()} == (
        dict.fromkeys(CLIENTS, 1)
    ), figures["clients"]


def rollout(fleet: Any, report: dict[str, Any], phase: str, *args: str, playbook: str) -> None:
    """Run `playbook` while the four clients and the fleet's load run; record the figures."""
    with (
        fleet_load(fleet, max_seconds=ROLLOUT_SECONDS, max_requests=20_000) as load,
        clients_of(fleet, ROLLOUT_SECONDS) as measured,
    ):
        started = time.monotonic()
        run = fleet.playbook(*args, playbook=playbook)
        seconds = time.monotonic() - started
    record(
        report, phase, measured, playbook_seconds=round(seconds, 1),
        load_calls=len(load.samples), load_failed=len(load.failures),
    )  # fmt: skip
    assert run.returncode == 0, f"{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
    assert seconds < ROLLOUT_SECONDS, "the clients stopped before the playbook ended"
    assert not load.failures, f"{len(load.failures)} failed load calls: {load.failures[:3]}"
    assert_contract_during_a_rollout(measured)


def test_during_an_upgrade_only_clients_whose_agent_is_out_miss(
    fleet: Any, report: dict[str, Any], tmp_path: Path
) -> None:
    version = bump_patch(fleet.version, RELEASE_PATCH)
    source = source_with_version(fleet.source, tmp_path, version)
    rollout(
        fleet, report, "upgrade",
        "-e", f"mesh_common_source_dir={source}", "-e", f"mesh_agent_version={version}",
        playbook=UPGRADE,
    )  # fmt: skip


def test_during_the_rollback_only_clients_whose_agent_is_out_miss(
    fleet: Any, report: dict[str, Any]
) -> None:
    """Also puts the session's release back."""
    rollout(fleet, report, "rollback", playbook=ROLLBACK)
    served = {}
    for name in fleet.lab.groups["agents"]:
        with fleet.urlopen(fleet.agent_url(name, "/health")) as answer:
            served[name] = json.loads(answer.read())["version"]
    assert served == dict.fromkeys(fleet.lab.groups["agents"], fleet.version)
