"""Bounded load generators through the lab's load balancer, from a few threads.

`LoadGenerator` sends GET requests to one URL; `McpLoad` makes MCP tool calls to one /mcp URL,
as clients of the mesh do: it writes a new file and reads a file every agent holds, in turn
(the seed file: while an agent is out, a client's calls move to another agent, which does not
hold the client's earlier writes). A tool call that comes back with `isError` is a failed call.

McpLoad is many clients: each call goes out with the next of its `tokens` (round-robin, a write
and a read per client in turn). The LB hashes on the Authorization header, so one token would
send all the load to one agent, and a rollout's first host (its canary) might get none.

Both take an `ssl_context` for https URLs (the fleet's, which trusts the lab's CA).

Hard limits on time and on the number of requests; each only ever talks to the one URL it is
given (the lab LB). Each request is recorded with its start time, so a run can be plotted.
"""

from __future__ import annotations

import itertools
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sample:
    started: float  # time.monotonic()
    seconds: float
    ok: bool
    detail: str  # HTTP status or the error


@dataclass
class LoadGenerator:
    url: str
    ssl_context: ssl.SSLContext | None = None  # verifies https URLs (None: system CAs)
    rate: float = 25.0  # requests per second, all threads together
    threads: int = 4
    max_seconds: float = 300.0
    max_requests: int = 10_000
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)
    started: float = 0.0
    stopped: float = 0.0

    def __enter__(self) -> LoadGenerator:
        self.started = time.monotonic()
        for index in range(self.threads):
            worker = threading.Thread(target=self._work, args=(index,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=15)
        self.stopped = time.monotonic()

    def _work(self, index: int) -> None:
        interval = self.threads / self.rate
        next_at = self.started + index * interval / self.threads
        deadline = self.started + self.max_seconds
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                return
            with self._lock:
                if len(self.samples) >= self.max_requests:
                    return
            if now < next_at:
                self._stop.wait(next_at - now)
                continue
            next_at += interval
            self._record(self._one())

    def _one(self) -> Sample:
        """One request; subclasses change what a request is."""
        started = time.monotonic()
        try:
            with urllib.request.urlopen(self.url, timeout=10, context=self.ssl_context) as response:
                response.read()
                status = response.status
            return Sample(started, time.monotonic() - started, status == 200, str(status))
        except urllib.error.HTTPError as exc:
            return Sample(started, time.monotonic() - started, False, f"HTTP {exc.code}")
        except (OSError, urllib.error.URLError) as exc:
            return Sample(started, time.monotonic() - started, False, repr(exc))

    def _record(self, sample: Sample) -> None:
        with self._lock:
            self.samples.append(sample)

    @property
    def failures(self) -> list[Sample]:
        return [sample for sample in self.samples if not sample.ok]

    @property
    def rate_achieved(self) -> float:
        seconds = (self.stopped or time.monotonic()) - self.started
        return len(self.samples) / seconds if seconds > 0 else 0.0


SEED_PATH = "load/seed.txt"  # written to every agent before a run: reads of it always succeed
SEED_TEXT = "seed file of the lab's MCP load, the same on every agent\n"


def tool_call(
    url: str,
    token: str,
    name: str,
    arguments: dict[str, Any],
    context: ssl.SSLContext | None = None,
) -> tuple[bool, str]:
    """One stateless MCP `tools/call` POST -> (succeeded, detail)."""
    answer = tool_answer(url, token, name, arguments, context)
    return answer.ok, answer.detail


@dataclass(frozen=True)
class ToolAnswer:
    ok: bool  # a result without isError
    detail: str  # "<tool> on <server>", with the error when there was one
    answered: bool = False  # an MCP result came back (isError or not)
    server: str = ""  # who answered (X-Mesh-Server), "" when nothing did
    text: str = ""  # the result's text


def tool_answer(
    url: str,
    token: str,
    name: str,
    arguments: dict[str, Any],
    context: ssl.SSLContext | None = None,
) -> ToolAnswer:
    """One stateless MCP `tools/call` POST -> what came back."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-06-18",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            answer = json.loads(response.read())
            server = response.headers.get("X-Mesh-Server", "?")
    except urllib.error.HTTPError as exc:
        return ToolAnswer(False, f"{name}: HTTP {exc.code}")
    except (OSError, ValueError) as exc:
        return ToolAnswer(False, f"{name}: {exc!r}")
    result = answer.get("result") if isinstance(answer, dict) else None
    if not isinstance(result, dict):
        return ToolAnswer(False, f"{name} on {server}: {str(answer)[:200]}", server=server)
    text = " ".join(str(part.get("text", "")) for part in result.get("content", []))
    if result.get("isError"):
        return ToolAnswer(False, f"{name} on {server}: {text[:200]}", True, server, text)
    return ToolAnswer(True, f"{name} on {server}", True, server, text)


def seed_agents(agent_urls: list[str], token: str, context: ssl.SSLContext | None = None) -> None:
    """Write the seed file to each agent directly (not through the load balancer)."""
    for url in agent_urls:
        arguments = {"path": SEED_PATH, "content": SEED_TEXT}
        ok, detail = tool_call(url, token, "write_file", arguments, context)
        if not ok:
            raise RuntimeError(f"could not seed {url}: {detail}")


@dataclass
class McpLoad(LoadGenerator):
    """MCP tool calls through `url` (the LB's /mcp): write_file and read_file in turn, each
    pair from the next client of `tokens` (round-robin; `token` alone: one client)."""

    token: str = ""
    tokens: list[str] = field(default_factory=list)
    run_id: str = field(default_factory=lambda: f"{time.time_ns():x}")
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def client_token(self, number: int) -> str:
        """The token call `number` goes out with: a write and a read per client in turn."""
        if not self.tokens:
            return self.token
        return self.tokens[(number // 2) % len(self.tokens)]

    def _one(self) -> Sample:
        number = next(self._counter)
        if number % 2:
            name, arguments = "read_file", {"path": SEED_PATH}
        else:
            path = f"load/{self.run_id}/{number:06d}.txt"
            name, arguments = "write_file", {"path": path, "content": f"call {number}\n"}
        started = time.monotonic()
        token = self.client_token(number)
        ok, detail = tool_call(self.url, token, name, arguments, self.ssl_context)
        return Sample(started, time.monotonic() - started, ok, detail)

    @property
    def failure_ratio(self) -> float:
        return len(self.failures) / len(self.samples) if self.samples else 0.0


def fleet_load(fleet: Any, max_seconds: float, max_requests: int) -> McpLoad:
    """The fleet's load clients writing and reading through its load balancer, 25 calls/s from
    eight threads (bounded), once every agent holds the seed file. Use it as a context manager.

    Eight threads, not four: each call is a new TLS connection through the LB, and on a busy
    2-CPU machine a call can take most of a second; four threads then made under 4 calls/s,
    which left a canary at 25 % weight with fewer than the 10 calls its judgement needs."""
    agents = [fleet.agent_url(name, "/mcp") for name in fleet.lab.groups["agents"]]
    seed_agents(agents, fleet.tokens["agent"], fleet.ssl_context)
    return McpLoad(
        fleet.lb_url("/mcp"), ssl_context=fleet.ssl_context, tokens=fleet.load_tokens,
        token=fleet.tokens["agent"],
        rate=25.0, threads=8, max_seconds=max_seconds, max_requests=max_requests,
    )  # fmt: skip
