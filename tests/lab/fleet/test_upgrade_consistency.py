"""Read-your-writes through the load balancer (issue 18), measured against the contract in
docs/consistency.md: the LB hashes each client's Authorization header onto one agent
(consistent hashing), and each agent keeps its own files, so
- in steady state a client's calls all land on one agent: 0 read-after-write misses;
- while an agent is out (a rolling upgrade drains each in turn) its clients move to others, and
  back when it returns: a read then misses the write the other agent took (not found, or older
  content). A read the agent that took the write answers never misses, and no call fails.

Four clients (alice, bob, carol, dave: the lab's named clients) each keep one file and, round
after round through the LB (bounded in time and count), read it (it should show the round
before's write), write new content and read it again. For 60 s in steady state, then during
upgrade.yml to a new release and during rollback.yml back to the session's release, with the
fleet's load generator running too so the rollout's first host gets real traffic for its
analysis. (Named test_upgrade_* so that it runs after the idempotence test, as the other
upgrade tests do: the release it installs and rolls back is one more for site.yml to prune.)
The figures (reads, misses, failed calls, the agents that answered, per client and in
total) go to consistency.json in the test's folder and are printed.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
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
class Read:
    """One client's read of its own file, which should show the client's last write."""

    client: str
    started: float  # time.monotonic()
    kind: str  # "new": right after the write; "earlier": the round before's write, read first
    outcome: str  # "hit", "miss" (answered without that write) or "failed" (no answer)
    written_on: str  # the agent that took the write this read should see
    read_on: str  # the agent that answered the read ("" when none did)
    detail: str


@dataclass
class ReadYourWrites:
    """Each client (a thread of its own, bounded) keeps one file through `url` and, round after
    round, reads it (it should show the write of the round before), writes new content to it and
    reads it again (it should show that). A write that fails is a failed read."""

    url: str
    tokens: dict[str, str]  # client -> token
    context: Any
    max_seconds: float
    reads: list[Read] = field(default_factory=list)
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
        token, path = self.tokens[client], f"consistency/{client}-{uuid.uuid4().hex[:12]}.txt"
        deadline = time.monotonic() + self.max_seconds
        last: tuple[str, str] | None = None  # (content, agent) of the last write that worked
        for _ in range(MAX_ROUNDS):
            if self._stop.is_set() or time.monotonic() >= deadline:
                return
            if last is not None:
                self._record(self._read(client, token, path, "earlier", *last))
            started, content = time.monotonic(), f"{client} {uuid.uuid4().hex}\n"
            arguments = {"path": path, "content": content}
            wrote = tool_answer(self.url, token, "write_file", arguments, self.context)
            if wrote.ok:
                last = (content, wrote.server)
                self._record(self._read(client, token, path, "new", *last))
            else:  # what the file holds now is unknown: no "earlier" read next round
                last = None
                self._record(Read(client, started, "new", "failed", "", "", wrote.detail))
            self._stop.wait(PACE)

    def _read(self, client: str, token: str, path: str, kind: str, content: str, on: str) -> Read:
        started = time.monotonic()
        read = tool_answer(self.url, token, "read_file", {"path": path}, self.context)
        if read.ok and content.strip() in read.text:
            outcome = "hit"
        elif read.answered and (read.ok or "does not exist" in read.text):
            outcome = "miss"  # an answer without the client's write: not found or older content
        else:
            outcome = "failed"
        return Read(client, started, kind, outcome, on, read.server, read.detail)

    def _record(self, done: Read) -> None:
        with self._lock:
            self.reads.append(done)

    def figures(self) -> dict[str, Any]:
        """Per client and in total: reads, misses (of them after a write just made), failed
        reads, the agents that answered, the client's home agent (the one that answered most)
        and the reads another agent answered."""
        per_client: dict[str, Any] = {}
        for client in self.tokens:
            mine = [done for done in self.reads if done.client == client]
            answered = Counter(done.read_on for done in mine if done.read_on)
            home = answered.most_common(1)[0][0] if answered else ""
            per_client[client] = {
                "reads": len(mine),
                "misses": sum(done.outcome == "miss" for done in mine),
                "misses_right_after_the_write": sum(
                    done.outcome == "miss" and done.kind == "new" for done in mine
                ),
                "failed": sum(done.outcome == "failed" for done in mine),
                "agents": sorted(answered),
                "home": home,
                "reads_elsewhere": sum(done.read_on not in ("", home) for done in mine),
            }
        keys = ("reads", "misses", "misses_right_after_the_write", "failed", "reads_elsewhere")
        total: dict[str, Any] = {
            key: sum(figures[key] for figures in per_client.values()) for key in keys
        }
        total["miss_ratio"] = round(total["misses"] / total["reads"], 4) if total["reads"] else 0
        return {"clients": per_client, "total": total}

    def misses(self) -> list[Read]:
        return [done for done in self.reads if done.outcome == "miss"]


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
    """A read misses only when another agent answers it than took the write (the client moved
    while its agent was out, or back when it returned); no call fails."""
    stayed = [done for done in measured.misses() if done.read_on == done.written_on]
    assert not stayed, f"misses on the agent that took the write: {[asdict(d) for d in stayed]}"
    failed = [done for done in measured.reads if done.outcome == "failed"]
    assert not failed, f"{len(failed)} failed, e.g. {[asdict(d) for d in failed[:3]]}"


def test_steady_state_every_client_reads_its_own_writes_from_one_agent(
    fleet: Any, report: dict[str, Any]
) -> None:
    with clients_of(fleet, STEADY_SECONDS) as measured:
        time.sleep(STEADY_SECONDS)
    record(report, "steady_state", measured, seconds=STEADY_SECONDS)
    figures = measured.figures()
    assert figures["total"]["reads"] >= len(CLIENTS) * 60, figures["total"]  # 1 a second each
    failed = [asdict(done) for done in measured.reads if done.outcome == "failed"]
    assert not failed, failed[:3]
    assert figures["total"]["misses"] == 0, [asdict(done) for done in measured.misses()[:5]]
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
