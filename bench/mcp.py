"""Benchmark: the agent's MCP `tools/call read_file` against a bare official-SDK `MCPServer`.

The bare server (BARE_MCP_APP) is what the SDK's documentation leads to: an `MCPServer` with
the same `read_file` tool (a plain `def`, which the SDK runs in a worker thread, as the agent
runs its file operations), `streamable_http_app(json_response=True, stateless_http=True)` (the
agent's mode), served by uvicorn with the agent's settings (h11, lifespan on, no access log,
proxy headers, the same keep-alive timeout and backlog). It has none of the agent's checks:
no bearer token, path guard, security monitor, metrics, audit log, body budget or connection
guard. What the agent does on top of the SDK is the difference between the two.

Both serve at once on 127.0.0.1, one process each; wrk (the agent bench's Lua POST) drives
each at 1, 10 and 50 connections for WRK_SECONDS, ROUNDS rounds after one warm-up round,
alternating which server goes first in each round (A B, B A, ...). Reported: medians of
requests/s, p50/p99, the CPU time each server spent per request (less sensitive to a busy
machine than requests/s), the ratio agent/bare per concurrency (target: at least TARGET), and
the machine's load average at the start and the end.

`--profile` (or `profile()`) writes bench/results/mcp_profile.txt: cProfile of the event-loop
thread of each server under PROFILE_SECONDS of one-connection load, top entries by cumulative
time, and the agent's own functions by their own time.

Writes bench/results/mcp.json. Run alone: `.venv/bin/python -m bench.mcp` (about 2 minutes).
"""

from __future__ import annotations

import http.client
import io
import json
import os
import platform
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.agent import (
    CONNECTIONS,
    MCP_HEADERS,
    READ_FILE_CALL,
    WRK_SECONDS,
    agent_command,
    agent_env,
    cpu_seconds,
    free_port,
    mcp_script,
    median_of,
    side_by_side,
    stop,
    wrk,
)

ROUNDS = 3  # the fewest the issue allows; each round is A B or B A at every concurrency
TARGET = 0.9  # agent requests/s at least this share of the bare SDK server's
PROFILE_SECONDS = 4
RESULTS = Path(__file__).parent / "results" / "mcp.json"
PROFILE = Path(__file__).parent / "results" / "mcp_profile.txt"
PAYLOAD = "mesh benchmark payload\n" * 40
PROFILE_PREAMBLE = """\
cProfile of the event-loop thread of the agent and of the bare SDK server, each serving
tools/call read_file over one keep-alive connection (bench/mcp.py, `python -m bench.mcp
--profile`). Times are the loop thread's CPU time (time.thread_time), so neither other
processes on the machine nor waiting count; they include cProfile's own overhead, which
inflates Python-heavy code. Coroutines count once per resumption, so `ncalls` of async
functions is a multiple of the calls. First each server's own time per call by layer, then
the top entries.

"""

# argv: port, base directory. The agent's uvicorn settings (serving.server.ServiceServer), with
# uvicorn's own h11 protocol instead of the agent's connection guard.
BARE_MCP_APP = """
import logging, sys
from pathlib import Path
import uvicorn
from mcp.server.mcpserver import MCPServer

BASE = Path(sys.argv[2])
server = MCPServer(name="bare")

@server.tool(description="Read a UTF-8 text file.")
def read_file(path: str) -> str:
    return (BASE / path).read_text(encoding="utf-8")

app = server.streamable_http_app(json_response=True, stateless_http=True)
logging.getLogger("mcp").setLevel(logging.WARNING)  # as the agent below DEBUG
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), lifespan="on", log_config=None,
            access_log=False, server_header=False, proxy_headers=True, timeout_keep_alive=5,
            http="h11", backlog=2048)
"""

# Runs a server's own `python -c` / `-m` code; cProfile (of the main thread: the event loop) runs
# from SIGUSR1 to SIGUSR2, which writes the statistics to PROFILE_OUT.
PROFILED = """
import cProfile, os, runpy, signal, sys, time
out = os.environ.pop("PROFILE_OUT")
profiler = cProfile.Profile(time.thread_time)  # the loop thread's CPU time
def begin(signum, frame):
    profiler.enable()
def end(signum, frame):
    profiler.disable()
    profiler.dump_stats(out)
def stopped(signum, frame):  # uvicorn raises the signal again once it has shut down
    raise SystemExit(0)
signal.signal(signal.SIGUSR1, begin)
signal.signal(signal.SIGUSR2, end)
signal.signal(signal.SIGTERM, stopped)
kind, target = sys.argv[1], sys.argv[2]
sys.argv = [target, *sys.argv[3:]]
try:
    if kind == "-m":
        runpy.run_module(target, run_name="__main__")
    else:
        exec(compile(target, "<bare>", "exec"), {"__name__": "__main__"})
except SystemExit:
    pass
"""


def bare_mcp_command(port: int, data: Path) -> list[str]:
    return [sys.executable, "-c", BARE_MCP_APP, str(port), str(data)]


def answers_read_file(port: int) -> bool:
    """Whether the server at `port` answers the bench's read_file call with the file."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("POST", "/mcp", body=json.dumps(READ_FILE_CALL), headers=MCP_HEADERS)
        response = connection.getresponse()
        payload = response.read()
    except OSError:
        return False
    if response.status != 200:
        return False
    result = json.loads(payload).get("result", {})
    texts = [item.get("text") for item in result.get("content", [])]
    return result.get("isError") is False and texts == [PAYLOAD]


def wait_mcp(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers_read_file(port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"127.0.0.1:{port}/mcp did not answer read_file in {timeout} s")


def start(command: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_mcp(port)
    except BaseException:
        stop(process)
        raise
    return process


def compare(runs: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """The agent vs. the bare SDK server, side by side (`side_by_side`)."""
    compared = side_by_side(runs, "agent", "bare", TARGET)
    return {"agent": compared.pop("arm"), "bare_sdk": compared.pop("against"), **compared}


def tables(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The result's tables: agent vs. bare, and the baseline beside them when it ran."""
    machine = result["machine"]
    load = (
        f"load average (1, 5, 15 min) {machine['load_average_at_start']} at the start, "
        f"{machine['load_average_at_end']} at the end, {machine['cpus']} CPUs"
    )
    shown = [table(result["connections"])]
    shown[0]["title"] += f"; {load}"
    baseline = result.get("baseline")
    if baseline:
        rows = []
        for connections in CONNECTIONS:
            level = baseline[str(connections)]
            rows.append(
                [
                    connections,
                    level["baseline_rps_ratio_to_bare"],
                    level["agent_rps_ratio_to_bare"],
                    level["baseline_cpu_per_request_ratio_to_bare"],
                    result["connections"][str(connections)]["cpu_per_request_ratio"],
                ]
            )
        shown.append(
            {
                "title": f"before and after, same run: {baseline['what']} vs. this agent, "
                f"each against the bare server; {load}",
                "columns": [
                    "connections",
                    "req/s ratio before",
                    "req/s ratio after",
                    "CPU per request before",
                    "CPU per request after",
                ],
                "rows": rows,
            }
        )
    return shown


def table(compared: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rows = []
    for connections in CONNECTIONS:
        figures = compared[str(connections)]
        agent, bare = figures["agent"], figures["bare_sdk"]
        rows.append([connections, round(agent["rps_median"]), round(bare["rps_median"]),
                     figures["rps_ratio"], agent["p50_ms_median"], bare["p50_ms_median"],
                     figures["cpu_per_request_ratio"]])  # fmt: skip
    return {
        "title": "MCP tools/call read_file: the agent vs. a bare SDK MCPServer (medians)",
        "columns": [
            "connections",
            "agent req/s",
            "bare req/s",
            "ratio",
            "agent p50 ms",
            "bare p50 ms",
            "CPU per request agent/bare",
        ],
        "rows": rows,
    }


def agent_mcp_env(port: int, data: Path, workdir: Path) -> dict[str, str]:
    """The bench agent's environment, with the audit file the role sets (one line per call)."""
    return {**agent_env(port, data), "MCP_MESH_AUDIT_LOG": str(workdir / f"audit-{port}.log")}


def round_orders(arms: list[str], rounds: int) -> list[list[str]]:
    """Which arm goes when in each round: forward, then backward (A B, B A, ...)."""
    return [list(arms) if n % 2 == 0 else list(reversed(arms)) for n in range(rounds)]


def main(
    baseline: str | None = None, profile_too: bool = True, baseline_label: str | None = None
) -> dict[str, Any]:
    """`baseline`: a folder holding another `mcp_mesh_sdk` (e.g. the last release's
    runtime/), run as a third arm, `agent_baseline`, to measure a change side by side.
    `profile_too`: then profile both servers (`profile`)."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    arms = ["agent", "bare"] + (["agent_baseline"] if baseline else [])
    with tempfile.TemporaryDirectory(prefix="bench-mcp-") as temp:
        workdir = Path(temp)
        data = workdir / "data"
        data.mkdir()
        (data / "bench.txt").write_text(PAYLOAD)
        script = mcp_script(workdir)
        ports = {arm: free_port() for arm in arms}
        commands = {arm: agent_command() for arm in arms}
        envs = {arm: agent_mcp_env(ports[arm], data, workdir) for arm in arms}
        commands["bare"], envs["bare"] = bare_mcp_command(ports["bare"], data), dict(os.environ)
        if baseline:
            envs["agent_baseline"]["PYTHONPATH"] = baseline
        runs: dict[str, dict[str, list[dict[str, float]]]] = {
            str(c): {arm: [] for arm in arms} for c in CONNECTIONS
        }
        processes: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for arm in arms:
                processes[arm] = start(commands[arm], envs[arm], ports[arm])
            stat = {arm: Path(f"/proc/{p.pid}/stat") for arm, p in processes.items()}
            for arm in arms:  # warm-up, not counted
                for connections in CONNECTIONS:
                    wrk(f"http://127.0.0.1:{ports[arm]}/mcp", connections, script)
            for order in round_orders(arms, ROUNDS):
                for connections in CONNECTIONS:
                    for arm in order:
                        before = cpu_seconds(stat[arm].read_text())
                        figures = wrk(f"http://127.0.0.1:{ports[arm]}/mcp", connections, script)
                        spent = cpu_seconds(stat[arm].read_text()) - before
                        requests = max(1.0, figures["rps"] * WRK_SECONDS)
                        figures["cpu_us_per_request"] = round(spent / requests * 1e6, 2)
                        runs[str(connections)][arm].append(figures)
        finally:
            for process in processes.values():
                stop(process)
    compared = {level: compare(level_runs) for level, level_runs in runs.items()}
    result: dict[str, Any] = {
        "benchmark": "mcp",
        "title": "MCP call path: the agent vs. a bare SDK MCPServer",
        "statistic": f"median of {ROUNDS} interleaved rounds (A B, B A, ...) of {WRK_SECONDS} s "
        "per server and concurrency, after one warm-up round",
        "case": "tools/call read_file, stateless streamable HTTP with JSON answers; the bare "
        "server has the same tool and uvicorn settings and none of the agent's checks; the "
        "agent writes its audit file, as deployed",
        "target": f"agent requests/s at least {TARGET:g} of the bare server's at every concurrency",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "connections": compared,
    }
    if baseline:
        result["baseline"] = {
            "what": baseline_label or "another mcp_mesh_sdk",
            **baseline_comparison(runs),
        }
    result["tables"] = tables(result)
    if profile_too:
        layers = profile()
        result["profile"] = {"file": f"bench/results/{PROFILE.name}", **layers}
        result["reading"] = reading(layers)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


SDK_LAYERS = (
    "SDK: mcp",
    "SDK: mcp_types",
    "SDK: pydantic",
    "SDK: anyio (task groups, memory streams)",
)
AGENT_LAYERS = (
    "the agent (mcp_mesh_sdk)",
    "logging (the agent: its audit line)",
    "the agent: prometheus_client",
)


def reading(layers: dict[str, dict[str, float]]) -> str:
    """What the profile shows, in a sentence or two with its figures."""
    bare, agent = layers["bare"], layers["agent"]

    def busy(found: dict[str, float]) -> float:
        return sum(v for k, v in found.items() if k != "waiting in epoll (idle)")

    sdk = sum(bare.get(name, 0.0) for name in SDK_LAYERS)
    ours = sum(agent.get(name, 0.0) for name in AGENT_LAYERS)
    return (
        f"Under cProfile, one call costs the bare server's event loop {busy(bare):.0f} us, "
        f"{sdk:.0f} us of it in the SDK's stateless path (mcp, mcp_types, pydantic, anyio: a "
        "transport, memory streams, a task group and a dispatcher made per request); the "
        f"agent's loop {busy(agent):.0f} us, {ours:.0f} us of it in the agent's own code "
        "(auth, path guard, security monitor, metrics, audit line). The rest is uvicorn, h11, "
        "starlette, asyncio, socket calls and builtins, the same code in both. What would "
        "lift the SDK's share: a stateless JSON fast path in the SDK (a POST dispatched to its "
        "handler without a transport, stream pairs and a task per request)."
    )


def baseline_comparison(runs: dict[str, dict[str, list[dict[str, float]]]]) -> dict[str, Any]:
    """The baseline agent against the bare server and against the agent, per concurrency."""
    shown: dict[str, Any] = {}
    for level, level_runs in runs.items():
        medians = {arm: median_of(arm_runs)["rps_median"] for arm, arm_runs in level_runs.items()}
        cpu = {
            arm: statistics.median(run["cpu_us_per_request"] for run in arm_runs)
            for arm, arm_runs in level_runs.items()
        }
        shown[level] = {
            "agent_baseline_rps_median": medians["agent_baseline"],
            "baseline_rps_ratio_to_bare": round(medians["agent_baseline"] / medians["bare"], 3),
            "agent_rps_ratio_to_bare": round(medians["agent"] / medians["bare"], 3),
            "baseline_cpu_us_per_request_median": cpu["agent_baseline"],
            "baseline_cpu_per_request_ratio_to_bare": round(cpu["agent_baseline"] / cpu["bare"], 3),
        }
    return shown


# -- the profile ---------------------------------------------------------------------------------


def profiled(command: list[str], out: Path) -> list[str]:
    """`command` (python -c CODE ... or python -m MODULE ...) under cProfile, dumped to `out`."""
    python, kind, target, *rest = command
    return [python, "-c", PROFILED, kind, target, *rest]


# Where a function's own time goes, by the first of these its file path holds (else "other").
LAYERS = (
    ("mcp_mesh_sdk", "the agent (mcp_mesh_sdk)"),
    ("/logging/", "logging (the agent: its audit line)"),
    ("prometheus_client", "the agent: prometheus_client"),
    ("/mcp/", "SDK: mcp"),
    ("mcp_types", "SDK: mcp_types"),
    ("pydantic", "SDK: pydantic"),
    ("anyio", "SDK: anyio (task groups, memory streams)"),
    ("starlette", "starlette"),
    ("uvicorn", "uvicorn"),
    ("h11", "h11"),
    ("select.epoll", "waiting in epoll (idle)"),
    ("_socket.socket", "socket send/recv"),
    ("posix.", "os calls (open, read, fstat...)"),
    ("_queue.", "thread hand-off (queue, locks)"),
    ("_thread.", "thread hand-off (queue, locks)"),
    ("asyncio", "asyncio"),
)


def layer_of(filename: str, function: str) -> str:
    where = f"{filename} {function}"
    return next((name for key, name in LAYERS if key in where), "other (stdlib, builtins)")


def by_layer(stats: pstats.Stats, calls: int) -> dict[str, float]:
    """Own time per call in microseconds, summed by layer (the profile's `tottime`)."""
    totals: dict[str, float] = {}
    for (filename, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        layer = layer_of(filename, function)
        totals[layer] = totals.get(layer, 0.0) + row[2] / calls * 1e6
    return {name: round(value, 1) for name, value in sorted(totals.items(), key=lambda kv: -kv[1])}


def profile_text(stats_file: Path, title: str, own: str | None, calls: int) -> tuple[str, dict]:
    buffer = io.StringIO()
    stats = pstats.Stats(str(stats_file), stream=buffer)
    layers = by_layer(stats, calls)
    print(f"===== {title}: own time per call by layer (us, under cProfile) =====", file=buffer)
    for name, value in layers.items():
        print(f"  {value:9.1f}  {name}", file=buffer)
    print(f"===== {title}: top 45 by cumulative time =====", file=buffer)
    stats.sort_stats("cumulative").print_stats(45)
    print(f"===== {title}: top 30 by own time =====", file=buffer)
    stats.sort_stats("tottime").print_stats(30)
    if own is not None:
        print(f"===== {title}: the agent's own functions ({own}) by cumulative time =====",
              file=buffer)  # fmt: skip
        stats.sort_stats("cumulative").print_stats(own, 30)
    text = buffer.getvalue().replace(str(Path(__file__).resolve().parent.parent), "<repo>")
    text = text.replace(str(Path(json.__file__).parent.parent), "<stdlib>")
    return text.replace(sys.prefix, "<venv>"), layers


def one_call(connection: http.client.HTTPConnection) -> None:
    connection.request("POST", "/mcp", body=json.dumps(READ_FILE_CALL), headers=MCP_HEADERS)
    connection.getresponse().read()


def profile() -> dict[str, Any]:
    """Each server under cProfile with one connection of read_file calls for PROFILE_SECONDS;
    writes PROFILE, returns each server's own time per call by layer."""
    sections = []
    layers: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-mcp-profile-") as temp:
        workdir = Path(temp)
        data = workdir / "data"
        data.mkdir()
        (data / "bench.txt").write_text(PAYLOAD)
        for name in ("agent", "bare"):
            port = free_port()
            out = workdir / f"{name}.prof"
            command = agent_command() if name == "agent" else bare_mcp_command(port, data)
            env = agent_mcp_env(port, data, workdir) if name == "agent" else dict(os.environ)
            env["PROFILE_OUT"] = str(out)
            process = start(profiled(command, out), env, port)
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                for _ in range(200):  # warm-up, not profiled
                    one_call(connection)
                process.send_signal(signal.SIGUSR1)
                time.sleep(0.2)
                started = time.perf_counter()
                done = 0
                while time.perf_counter() - started < PROFILE_SECONDS:
                    one_call(connection)
                    done += 1
                process.send_signal(signal.SIGUSR2)
                connection.close()
                for _ in range(100):
                    if out.exists():
                        break
                    time.sleep(0.1)
            finally:
                stop(process)
            own = "mcp_mesh_sdk" if name == "agent" else None
            header = f"{name}: {done} read_file calls over one connection in {PROFILE_SECONDS} s"
            text, layers[name] = profile_text(out, header, own, done)
            sections.append(text)
    PROFILE.parent.mkdir(parents=True, exist_ok=True)
    PROFILE.write_text(PROFILE_PREAMBLE + "\n".join(sections))
    return layers


if __name__ == "__main__":
    if sys.argv[1:] == ["--profile"]:  # the profile again, into the last result too
        layers = profile()
        if RESULTS.exists():
            last = json.loads(RESULTS.read_text())
            last["profile"] = {"file": f"bench/results/{PROFILE.name}", **layers}
            last["reading"] = reading(layers)
            RESULTS.write_text(json.dumps(last, indent=2) + "\n")
        print(json.dumps(layers, indent=1))
        raise SystemExit(0)
    if sys.argv[1:2] == ["--baseline"]:  # --baseline FOLDER [WHAT IT IS]
        outcome = main(baseline=sys.argv[2], baseline_label=" ".join(sys.argv[3:]) or None)
        print(json.dumps(outcome["baseline"], indent=1))
    else:
        outcome = main()
    shown = outcome["tables"][0]
    for row in shown["rows"]:
        print(dict(zip(shown["columns"], row, strict=True)))
    print("load average", outcome["machine"])
