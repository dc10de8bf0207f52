"""Benchmark: the agent against a bare uvicorn hello-world app on the same machine.

Measured side by side in one run (medians of RUNS runs, both servers on 127.0.0.1, one
uvicorn worker each, same HTTP stack):
- cold start: process spawn to `READY=1` on a NOTIFY_SOCKET the bench binds (target 1.0 s);
  the bare app's spawn-to-first-answer is shown for reference;
- RSS after 1,000 requests (a mix of /health, /ready, /metrics and MCP read_file; target 80 MB);
- `/health` requests/s and p50/p99 latency with wrk at 1, 10 and 50 connections for a
  bounded duration, against the bare app's `/health` (target at 50 connections: at least
  70 % of its requests/s);
- MCP `tools/call read_file` (stateless streamable HTTP, JSON response) at 1, 10 and 50
  connections, same figures.

Writes bench/results/agent.json. Run alone: `.venv/bin/python -m bench.agent`.

The bounded-serving limits (connection guard, header timeout, body budget, MAX_CONCURRENT_OPS)
are measured side by side too: one agent with the defaults and one with
them off (the guard and the body budget bypassed by a bench-only launcher, the other limits
out of reach), `/health` at 50 connections and MCP read_file at 10, LIMITS_ROUNDS rounds
alternating which goes first; the ratio of the medians should stay within 5 % (target: at
least 0.95).
Writes bench/results/agent_limits.json; alone: `.venv/bin/python -m bench.agent --limits`
(about 100 s).
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RUNS = 3
WRK_SECONDS = 3  # per wrk run; RUNS runs of each, alternated with the bare app
CONNECTIONS = (1, 10, 50)
HEALTH_TARGET_CONNECTIONS = 50
RSS_REQUESTS = 1000
TARGETS = {"cold_start_s": 1.0, "rss_mb": 80.0, "health_rps_ratio": 0.7}
TOKEN = "bench-token-0123456789abcdef"
RESULTS = Path(__file__).parent / "results" / "agent.json"
LIMITS_RESULTS = Path(__file__).parent / "results" / "agent_limits.json"
LIMITS_ROUNDS = 7  # the health ratio sits near its 0.95 target: 5 rounds gave 0.972 and 0.939
LIMITS_TARGET_RATIO = 0.95  # limits on / limits off, requests/s medians
LIMITS_LOADS = {"health": ("/health", 50), "mcp_read_file": ("/mcp", 10)}  # path, connections
# The agent with the bounded-serving code off: uvicorn's own h11 protocol instead of the
# connection guard, /mcp bodies straight to the SDK (no budget, no trim); the other limits
# out of reach (LIMITS_OUT_OF_REACH). For this comparison only.
LIMITS_OFF_LAUNCHER = """
import sys
from uvicorn.protocols.http.h11_impl import H11Protocol
from mcp_mesh_sdk.agent import admission
from mcp_mesh_sdk.serving import connections
connections.GuardedH11Protocol.bound_to = classmethod(lambda cls, guard: H11Protocol)
async def straight_through(self, scope, receive, send, app):
    await app(scope, receive, send)
admission.BodyAdmission.__call__ = straight_through
from mcp_mesh_sdk.server import main
sys.exit(main())
"""
LIMITS_OUT_OF_REACH = {
    "MCP_MESH_MAX_CONNECTIONS": "10000",
    "MCP_MESH_HEADER_TIMEOUT": "600",
    "MCP_MESH_MAX_BUFFERED_BYTES": str(1 << 40),
    "MAX_CONCURRENT_OPS": "100000",
}

BARE_APP = """
import json, sys, uvicorn
BODY = json.dumps({"status": "healthy"}).encode()
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": BODY})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False, lifespan="off")
"""

READ_FILE_CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "read_file", "arguments": {"path": "bench.txt"}},
}
MCP_HEADERS = {
    "Authorization": f"Bearer {TOKEN}",
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-06-18",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def agent_env(port: int, data: Path, notify: str | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "MCP_MESH_HOST": "127.0.0.1",
        "MCP_MESH_PORT": str(port),
        "MCP_MESH_TOKEN": TOKEN,
        "BASE_DIRECTORY": str(data),
        "AGENT_NAME": "bench-agent",
        "MESH_REGISTRY_URL": f"http://127.0.0.1:{free_port()}",  # none: fallback mode
        "MCP_MESH_DRAIN_DELAY": "0",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("NOTIFY_SOCKET", None)
    env.pop("WATCHDOG_USEC", None)
    if notify:
        env["NOTIFY_SOCKET"] = notify
    return env


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def wait_http(port: int, path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise TimeoutError(f"127.0.0.1:{port}{path} did not answer 200 in {timeout} s")


@contextmanager
def running(command: list[str], env: dict[str, str], port: int, path: str) -> Iterator[int]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_http(port, path)
        yield process.pid
    finally:
        stop(process)


def agent_command() -> list[str]:
    return [sys.executable, "-m", "mcp_mesh_sdk.server"]


def bare_command(port: int) -> list[str]:
    return [sys.executable, "-c", BARE_APP, str(port)]


# -- cold start ----------------------------------------------------------------------------------


def agent_cold_start(data: Path, workdir: Path) -> float:
    """Seconds from spawn to READY=1 on the notify socket."""
    path = workdir / f"notify-{time.monotonic_ns()}.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(30)
        env = agent_env(free_port(), data, notify=str(path))
        started = time.perf_counter()
        process = subprocess.Popen(agent_command(), env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            while True:
                if "READY=1" in sock.recv(4096).decode().splitlines():
                    return time.perf_counter() - started
        finally:
            stop(process)
            path.unlink(missing_ok=True)


def bare_cold_start() -> float:
    """Seconds from spawn to the bare app's first 200."""
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(bare_command(port), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_http(port, "/health")
        return time.perf_counter() - started
    finally:
        stop(process)


# -- memory ------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def drive_requests(port: int, count: int) -> int:
    """`count` requests over one keep-alive connection; returns how many were not 200."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = json.dumps(READ_FILE_CALL)
    failures = 0
    for n in range(count):
        kind = n % 4
        if kind == 3:
            connection.request("POST", "/mcp", body=body, headers=MCP_HEADERS)
        else:
            connection.request("GET", ("/health", "/ready", "/metrics")[kind])
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200 or (kind == 3 and b'"isError":true' in payload):
            failures += 1
    connection.close()
    return failures


# -- throughput --------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> dict[str, float]:
    """Requests/s, p50/p99 in ms and error counts from `wrk --latency` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    if rps is None or p50 is None or p99 is None:
        raise RuntimeError(f"could not read wrk's output:\n{output}")
    return {
        "rps": float(rps.group(1)),
        "p50_ms": round(float(p50.group(1)) * _UNITS[p50.group(2)], 3),
        "p99_ms": round(float(p99.group(1)) * _UNITS[p99.group(2)], 3),
        "non_2xx": float(errors.group(1)) if errors else 0.0,
        "socket_errors": 1.0 if socket_errors else 0.0,
    }


def wrk(url: str, connections: int, script: Path | None = None) -> dict[str, float]:
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{WRK_SECONDS}s",
               "--latency", "--timeout", "10s"]  # fmt: skip
    if script is not None:
        command += ["-s", str(script)]
    done = subprocess.run([*command, url], capture_output=True, text=True, check=True,
                          timeout=WRK_SECONDS + 60)  # fmt: skip
    try:
        return parse_wrk(done.stdout)
    except RuntimeError as error:
        raise RuntimeError(f"{error}\n{done.stderr}") from None


def mcp_script(workdir: Path) -> Path:
    script = workdir / "read_file.lua"
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in MCP_HEADERS.items())
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = [[{json.dumps(READ_FILE_CALL)}]]\n{headers}\n'
    )
    return script


def median_of(samples: list[dict[str, float]]) -> dict[str, Any]:
    return {
        "rps_median": statistics.median(s["rps"] for s in samples),
        "p50_ms_median": statistics.median(s["p50_ms"] for s in samples),
        "p99_ms_median": statistics.median(s["p99_ms"] for s in samples),
        "non_2xx_total": sum(s["non_2xx"] for s in samples),
        "runs": samples,
    }


def health_side_by_side(agent_port: int, bare_port: int, connections: int) -> dict[str, Any]:
    """`/health` of the agent and of the bare app, runs alternated so that drift in the
    machine's load hits both alike."""
    agent_runs, bare_runs = [], []
    for _ in range(RUNS):
        agent_runs.append(wrk(f"http://127.0.0.1:{agent_port}/health", connections))
        bare_runs.append(wrk(f"http://127.0.0.1:{bare_port}/health", connections))
    agent, bare = median_of(agent_runs), median_of(bare_runs)
    return {
        "agent": agent,
        "bare_uvicorn": bare,
        "rps_ratio": round(agent["rps_median"] / bare["rps_median"], 3),
    }


def throughput_table(health: dict[str, Any], mcp: dict[str, Any]) -> dict[str, Any]:
    """One row per endpoint and connection count, for the report."""
    rows = []
    for connections in CONNECTIONS:
        level = health[str(connections)]
        for name, figures in (
            ("agent /health", level["agent"]),
            ("bare uvicorn /health", level["bare_uvicorn"]),
            ("agent MCP read_file", mcp[str(connections)]),
        ):
            rows.append([name, connections, round(figures["rps_median"]),
                         figures["p50_ms_median"], figures["p99_ms_median"]])  # fmt: skip
    return {
        "title": "requests/s and latency (medians)",
        "columns": ["endpoint", "connections", "requests/s", "p50 ms", "p99 ms"],
        "rows": rows,
    }


# -- the limits, on and off ------------------------------------------------------------------------


def arm_order(rounds: int) -> list[tuple[str, str]]:
    """Which arm goes first in each round: alternated, so drift hits both alike."""
    return [("on", "off") if n % 2 == 0 else ("off", "on") for n in range(rounds)]


def limits_env(env: dict[str, str], arm: str) -> dict[str, str]:
    """`env` for the arm: `on` keeps the defaults, `off` puts every limit out of reach."""
    return {**env, **LIMITS_OUT_OF_REACH} if arm == "off" else dict(env)


def limits_command(arm: str) -> list[str]:
    """The agent as it is (`on`), or with the bounded-serving code bypassed (`off`)."""
    return [sys.executable, "-c", LIMITS_OFF_LAUNCHER] if arm == "off" else agent_command()


def cpu_seconds(stat: str) -> float:
    """User plus system CPU seconds from the text of /proc/<pid>/stat."""
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is field 3
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def side_by_side(
    runs: dict[str, list[dict[str, float]]], arm: str, against: str, target: float
) -> dict[str, Any]:
    """Medians of two servers measured in the same rounds, and `arm`'s ratio to `against` of
    requests/s (against `target`) and of CPU time per request (less sensitive to a busy
    machine): {"arm", "against", "rps_ratio", "cpu_per_request_ratio", "target", "met"}."""
    one, other = median_of(runs[arm]), median_of(runs[against])
    for name, figures in ((arm, one), (against, other)):
        figures["cpu_us_per_request_median"] = statistics.median(
            run["cpu_us_per_request"] for run in runs[name]
        )
    ratio = round(one["rps_median"] / other["rps_median"], 3)
    cpu_ratio = one["cpu_us_per_request_median"] / other["cpu_us_per_request_median"]
    return {
        "arm": one,
        "against": other,
        "rps_ratio": ratio,
        "cpu_per_request_ratio": round(cpu_ratio, 3),
        "target": target,
        "met": ratio >= target,
    }


def compare_arms(runs: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """The limits on vs. off, side by side (`side_by_side`)."""
    compared = side_by_side(runs, "on", "off", LIMITS_TARGET_RATIO)
    return {"limits_on": compared.pop("arm"), "limits_off": compared.pop("against"), **compared}


def limits_table(compared: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rows = []
    for load, (_, connections) in LIMITS_LOADS.items():
        figures = compared[load]
        rows.append([load, connections, round(figures["limits_on"]["rps_median"]),
                     round(figures["limits_off"]["rps_median"]), figures["rps_ratio"],
                     figures["cpu_per_request_ratio"]])  # fmt: skip
    return {
        "title": "bounded-serving limits: requests/s medians, defaults vs. off",
        "columns": [
            "load",
            "connections",
            "limits on",
            "limits off",
            "ratio",
            "CPU per request on/off",
        ],
        "rows": rows,
    }


def compare_limits() -> dict[str, Any]:
    """Both arms served at once; every round runs each load on each arm."""
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as temp:
        workdir = Path(temp)
        data = workdir / "data"
        data.mkdir()
        (data / "bench.txt").write_text("mesh benchmark payload\n" * 40)
        script = mcp_script(workdir)
        ports = {"on": free_port(), "off": free_port()}
        runs: dict[str, dict[str, list[dict[str, float]]]] = {
            load: {"on": [], "off": []} for load in LIMITS_LOADS
        }
        with (
            running(limits_command("on"), limits_env(agent_env(ports["on"], data), "on"),
                    ports["on"], "/ready") as on_pid,
            running(limits_command("off"), limits_env(agent_env(ports["off"], data), "off"),
                    ports["off"], "/ready") as off_pid,
        ):  # fmt: skip
            stat = {"on": Path(f"/proc/{on_pid}/stat"), "off": Path(f"/proc/{off_pid}/stat")}
            for arm in ("on", "off"):  # warm-up, not counted: the first runs are slower
                for path, connections in LIMITS_LOADS.values():
                    wrk(f"http://127.0.0.1:{ports[arm]}{path}", connections,
                        script if path == "/mcp" else None)  # fmt: skip
            for order in arm_order(LIMITS_ROUNDS):
                for arm in order:
                    for load, (path, connections) in LIMITS_LOADS.items():
                        url = f"http://127.0.0.1:{ports[arm]}{path}"
                        lua = script if path == "/mcp" else None
                        before = cpu_seconds(stat[arm].read_text())
                        figures = wrk(url, connections, lua)
                        spent = cpu_seconds(stat[arm].read_text()) - before
                        requests = max(1.0, figures["rps"] * WRK_SECONDS)
                        figures["cpu_us_per_request"] = round(spent / requests * 1e6, 2)
                        runs[load][arm].append(figures)
    compared = {load: compare_arms(runs[load]) for load in LIMITS_LOADS}
    result: dict[str, Any] = {
        "benchmark": "agent_limits",
        "statistic": f"median of {LIMITS_ROUNDS} alternating rounds of {WRK_SECONDS} s per arm "
        "after one warm-up round",
        "case": "the agent's defaults vs. the bounded-serving code off (see LIMITS_OFF_LAUNCHER)",
        "target": f"requests/s with the limits at least {LIMITS_TARGET_RATIO:g} of without",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "off_also_sets": LIMITS_OUT_OF_REACH,
        **compared,
        "tables": [limits_table(compared)],
    }
    LIMITS_RESULTS.parent.mkdir(parents=True, exist_ok=True)
    LIMITS_RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


# -- the whole run -----------------------------------------------------------------------------


def main() -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as temp:
        workdir = Path(temp)
        data = workdir / "data"
        data.mkdir()
        (data / "bench.txt").write_text("mesh benchmark payload\n" * 40)

        cold = [agent_cold_start(data, workdir) for _ in range(RUNS)]
        bare_cold = [bare_cold_start() for _ in range(RUNS)]

        agent_port, bare_port = free_port(), free_port()
        env = agent_env(agent_port, data)
        with (
            running(agent_command(), env, agent_port, "/ready") as agent_pid,
            running(bare_command(bare_port), dict(os.environ), bare_port, "/health"),
        ):
            rss_start = rss_mb(agent_pid)
            failed = drive_requests(agent_port, RSS_REQUESTS)
            rss_after = rss_mb(agent_pid)
            health = {
                str(connections): health_side_by_side(agent_port, bare_port, connections)
                for connections in CONNECTIONS
            }
            script = mcp_script(workdir)
            mcp = {
                str(connections): median_of(
                    [
                        wrk(f"http://127.0.0.1:{agent_port}/mcp", connections, script)
                        for _ in range(RUNS)
                    ]
                )
                for connections in CONNECTIONS
            }
            rss_after_load = rss_mb(agent_pid)

    target_level = health[str(HEALTH_TARGET_CONNECTIONS)]
    target_level["target_ratio"] = TARGETS["health_rps_ratio"]
    target_level["met"] = target_level["rps_ratio"] >= TARGETS["health_rps_ratio"]
    cold_median = statistics.median(cold)
    result: dict[str, Any] = {
        "benchmark": "agent",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "method": {
            "runs": RUNS,
            "wrk_seconds": WRK_SECONDS,
            "connections": list(CONNECTIONS),
            "health_target_connections": HEALTH_TARGET_CONNECTIONS,
            "statistic": "median",
        },
        "cold_start_to_ready_s": {
            "agent_median": round(cold_median, 3),
            "agent_runs": [round(x, 3) for x in cold],
            "bare_uvicorn_first_answer_median": round(statistics.median(bare_cold), 3),
            "target": TARGETS["cold_start_s"],
            "met": cold_median <= TARGETS["cold_start_s"],
        },
        "rss_mb": {
            "at_ready": round(rss_start, 1),
            "after_1000_requests": round(rss_after, 1),
            "failed_requests": failed,
            "after_all_load": round(rss_after_load, 1),
            "target": TARGETS["rss_mb"],
            "met": rss_after <= TARGETS["rss_mb"],
        },
        "health": health,
        "mcp_read_file": mcp,
        "tables": [throughput_table(health, mcp)],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    compare_limits()
    return result


if __name__ == "__main__":
    if sys.argv[1:] == ["--limits"]:
        if shutil.which("wrk") is None:
            raise SystemExit("wrk is not installed (apt-get install wrk)")
        limits = compare_limits()
        for row in limits["tables"][0]["rows"]:
            print(dict(zip(limits["tables"][0]["columns"], row, strict=True)))
        raise SystemExit(0)
    outcome = main()
    shown = ("cold_start_to_ready_s", "rss_mb")
    print(json.dumps({key: outcome[key] for key in shown}, indent=2))
    table = outcome["tables"][0]
    for row in table["rows"]:
        print(dict(zip(table["columns"], row, strict=True)))
