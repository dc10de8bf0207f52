"""Benchmark: rolling upgrades of three agents under MCP client load through the load balancer.

One lab (3 agents) is deployed once with `site.yml` (release A, built from a copy of the
project's source with a new patch version). Then, with MCP clients calling write_file and
read_file through the LB's /mcp (McpLoad, 25 calls/s) for the whole of each run:

1. RUNS healthy upgrades: A -> B (pre-flight builds and installs B beside A), then B -> A,
   A -> B, ... between the two installed releases, which keeps the benchmark inside its time
   budget. Each host goes through the cycle of playbooks/tasks/host_cycle.yml: drain,
   activate (smoke test, soak), enable at a reduced weight, traffic analysis for the window
   (`mesh_upgrade_analysis_seconds`, 10 s by default), full weight back. Per host, the cycle
   runs from the start of the drain task to the end of the analysis task
   (`cycle_with_analysis_s`, target: at most 5 s plus the window); drain start to enabled and
   UP stays measured as `cycle_s` (target: at most 5 s with the 2 s soak). No client call may
   fail.
2. BAD_RUNS upgrades of the agents alone (`--limit agents`) to a release whose write_file
   raises on every client's call but not on the smoke test's (tests/lab/fleet/releases.break_tool
   with `spare`: a release the smoke test would stop never takes traffic). The analysis must stop
   the rollout on the canary (the first agent), which is rolled back, and leave the others
   untouched. Blast radius: failed client calls of all client calls made while the playbook
   ran (target: at most 2 %). Time to detection: from the end of the canary's enable (it takes
   traffic) to the end of its analysis. One bad release is built: run 1 installs it beside the
   good one, the rollback leaves the hosts on the good one, and later runs reuse the installed
   bad release.

The bench versions sit far above the source's own (patch + 900) so they never share a
wheelhouse cache entry with the test releases. Medians over the runs. Writes
bench/results/upgrade.json and a timeline of the median healthy run, upgrade_timeline.png.
Run alone: `.venv/bin/python -m bench.upgrade [--runs N] [--bad-runs N]`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mcp_mesh_sdk import __version__
from tests.lab.fleet.endpoints import Endpoints
from tests.lab.fleet.loadgen import McpLoad, Sample, seed_agents
from tests.lab.fleet.releases import break_tool, bump_patch, source_with_version

SMOKE_PREFIX = ".mcp-mesh-smoke"  # where `release activate`'s smoke test writes
REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "upgrade.json"
PLOT = REPO / "bench" / "results" / "upgrade_timeline.png"
LAB = "bupg"
AGENTS = 3
INVENTORY = REPO / "inventories" / "lab" / f"{LAB}.yml"
BIN = Path(sys.executable).parent
RUNS = 2  # one each way: A -> B, then B -> A
BAD_RUNS = 2
SOAK_SECONDS = 2
ANALYSIS_SECONDS = 10  # mesh_upgrade_analysis_seconds: the playbook's default, passed explicitly
CYCLE_TARGET_S = 5.0  # drain start to enabled and UP
CYCLE_WITH_ANALYSIS_TARGET_S = CYCLE_TARGET_S + ANALYSIS_SECONDS  # drain start to analysis end
BLAST_RADIUS_TARGET = 0.02  # failed client calls / all client calls while a bad release runs
LOAD_RATE = 25.0  # MCP tool calls per second through the LB
MIN_LOAD_RATE = 20.0
VERSION_OFFSET = 900  # A = +900, B = +901, the bad release = +902
QUIET_SECONDS = 1.0  # load before and after the playbook, so the plot shows the steady state
RESTART_TOLERANCE_S = 2.0  # a process start time that moved more than this: restarted

# Task names recorded by the timeline callback (prefixes: versions are part of some names).
DRAIN_TASK = "Drain the host in the load balancer"
ENABLE_TASK = "Enable the host in the load balancer and wait until it is UP"
ANALYSIS_TASK = "Judge the release by its traffic"
# The per-host switch as one task (upgrade.yml being reworked), or the restart step of the
# older playbook: whichever the playbook has.
RESTART_TASKS = ("Switch the host to release", "Restart the service on release")
WHEELHOUSE_TASK = "Build the runtime wheel"
HOST_COLOURS = ["tab:cyan", "tab:olive", "tab:brown", "tab:pink", "tab:gray"]


@dataclass
class TaskTime:
    task: str
    host: str
    start: float
    end: float
    status: str = "ok"


@dataclass
class HostCycle:
    """One host's cycle; in a rolled-back cycle, the marks are those of the way forward (the
    first drain, switch and enable) and `rollback` spans the rescue's drain to its enable."""

    host: str
    drain_start: float
    enabled_end: float
    drain_end: float | None = None
    restart: tuple[float, float] | None = None
    enable_start: float | None = None
    analysis: tuple[float, float] | None = None
    analysis_failed: bool = False
    rollback: tuple[float, float] | None = None
    rollback_drained: float | None = None  # the end of the rescue's drain

    @property
    def seconds(self) -> float:
        """Drain start to enabled and UP in the LB (at the reduced weight while judged)."""
        return self.enabled_end - self.drain_start

    @property
    def seconds_with_analysis(self) -> float | None:
        """Drain start to the end of the traffic analysis."""
        return self.analysis[1] - self.drain_start if self.analysis else None

    @property
    def end(self) -> float:
        """The end of the way forward: the analysis when there was one, else the enable."""
        return self.analysis[1] if self.analysis else self.enabled_end

    @property
    def detection_seconds(self) -> float | None:
        """From enabled (taking traffic) to the end of the analysis."""
        return self.analysis[1] - self.enabled_end if self.analysis else None


@dataclass
class Run:
    from_version: str
    to_version: str
    started: float  # time.time() when ansible-playbook started
    playbook_s: float
    tasks: list[TaskTime]
    cycles: dict[str, HostCycle]
    samples: list[tuple[float, Sample]]  # (time.time() of the call, sample)
    load_rate: float
    extra: dict[str, Any] = field(default_factory=dict)
    returncode: int = 0
    stdout: str = field(default="", repr=False)

    @property
    def ended(self) -> float:
        return self.started + self.playbook_s

    @property
    def agents_s(self) -> float | None:
        if not self.cycles:
            return None
        cycles = self.cycles.values()
        return max(c.end for c in cycles) - min(c.drain_start for c in cycles)

    @property
    def failures(self) -> list[Sample]:
        return [sample for _, sample in self.samples if not sample.ok]


# ---- the lab and the playbooks --------------------------------------------------------------


def _execute(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=REPO,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _run(args: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> str:
    done = _execute(args, env, timeout)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args[:3])} failed (exit {done.returncode}):\n"
            f"{done.stdout[-4000:]}{done.stderr[-2000:]}"
        )
    return done.stdout


def _lab(*args: str) -> str:
    return _run([sys.executable, "-m", "lab", *args, "--name", LAB])


def _lab_is_up() -> bool:
    status = [sys.executable, "-m", "lab", "status", "--name", LAB]
    return subprocess.run(status, cwd=REPO, capture_output=True, check=False).returncode == 0


def _playbook_command(playbook: str, *args: str) -> list[str]:
    return [str(BIN / "ansible-playbook"), "-i", str(INVENTORY), playbook, *args]


def _playbook(playbook: str, *args: str, env: dict[str, str] | None = None) -> str:
    return _run(_playbook_command(playbook, *args), env=env)


def _inventory() -> tuple[dict[str, str], dict[str, list[str]]]:
    """Host addresses and groups of the lab."""
    data = yaml.safe_load(INVENTORY.read_text())["all"]
    hosts = {name: str(values["lab_address"]) for name, values in data["hosts"].items()}
    groups = {name: list(body["hosts"]) for name, body in data["children"].items()}
    return hosts, groups


def _agent_token() -> str:
    """The agents' bearer token, which `lab up` writes into the lab's inventory (never shown)."""
    return str(yaml.safe_load(INVENTORY.read_text())["all"]["vars"]["mesh_agent_token"])


def _load_tokens() -> list[str]:
    """The lab's load clients' tokens (mesh_agent_clients load-01..): the LB hashes on the
    Authorization header, so the load spreads over the agents only from many clients."""
    clients = yaml.safe_load(INVENTORY.read_text())["all"]["vars"].get("mesh_agent_clients") or []
    return [str(client["token"]) for client in clients if str(client["name"]).startswith("load-")]


def _endpoints() -> Endpoints:
    """The lab's URLs and the ssl context that trusts its CA (https when the lab has TLS)."""
    return Endpoints.from_inventory(INVENTORY)


def _source_snapshot(folder: Path) -> Path:
    """A copy of what the runtime is built from, so edits made meanwhile do not leak in."""
    snapshot = folder / "source"
    snapshot.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, snapshot / name)
    ignored = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(REPO / "runtime", snapshot / "runtime", ignore=ignored)
    return snapshot


@dataclass(frozen=True)
class Served:
    version: str
    started_at: float  # time.time() the agent process started, from its uptime


def _served(agents: list[str]) -> dict[str, Served]:
    endpoints = _endpoints()
    served = {}
    for name in agents:
        url = endpoints.agent_url(name, "/health")
        with urllib.request.urlopen(url, timeout=10, context=endpoints.ssl_context) as answer:
            body = json.loads(answer.read())
        served[name] = Served(body["version"], time.time() - float(body["uptime_seconds"]))
    return served


def _served_versions(agents: list[str]) -> dict[str, str]:
    return {name: served.version for name, served in _served(agents).items()}


# ---- the timeline ---------------------------------------------------------------------------


def read_timeline(path: Path) -> list[TaskTime]:
    if not path.exists():
        return []
    tasks = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("status") != "skipped":
            name = entry["task"].split(" : ", 1)[-1]  # without the "role : " of role tasks
            tasks.append(
                TaskTime(
                    name, entry["host"], entry["start"], entry["end"], entry.get("status", "ok")
                )
            )
    return tasks


def host_cycles(tasks: list[TaskTime], agents: list[str]) -> dict[str, HostCycle]:
    """Per agent: its first drain to its first enable after it, with the marks in between (those
    present), the analysis that followed the enable, and a rollback (a second drain) if any."""
    cycles = {}
    for host in agents:
        mine = sorted((task for task in tasks if task.host == host), key=lambda task: task.start)
        drains = [task for task in mine if task.task.startswith(DRAIN_TASK)]
        if not drains:
            continue
        drain = drains[0]
        enables = [
            task for task in mine if task.task.startswith(ENABLE_TASK) and task.start >= drain.start
        ]
        if not enables:
            continue
        enable = enables[0]
        restarts = [
            task
            for task in mine
            if task.task.startswith(RESTART_TASKS) and task.start >= drain.start
        ]
        rescue_drains = [task for task in drains[1:] if task.start >= enable.end]
        rescue_start = rescue_drains[0].start if rescue_drains else math.inf
        analyses = [
            task
            for task in mine
            if task.task.startswith(ANALYSIS_TASK) and enable.end <= task.start < rescue_start
        ]
        rollback = None
        if rescue_drains:
            later = [task for task in enables[1:] if task.start >= rescue_start]
            rollback = (rescue_start, later[-1].end if later else rescue_drains[-1].end)
        cycles[host] = HostCycle(
            host,
            drain_start=drain.start,
            drain_end=drain.end,
            enabled_end=enable.end,
            enable_start=enable.start,
            restart=(restarts[0].start, restarts[0].end) if restarts else None,
            analysis=(analyses[0].start, analyses[0].end) if analyses else None,
            analysis_failed=bool(analyses) and analyses[0].status == "failed",
            rollback=rollback,
            rollback_drained=rescue_drains[0].end if rescue_drains else None,
        )
    return cycles


def task_seconds(tasks: list[TaskTime], prefix: str) -> float | None:
    matching = [task.end - task.start for task in tasks if task.task.startswith(prefix)]
    return round(max(matching), 2) if matching else None


def slowest_tasks(tasks: list[TaskTime], count: int = 5) -> dict[str, float]:
    """The longest tasks of a run (slowest host each): where the time goes."""
    longest: dict[str, float] = {}
    for task in tasks:
        longest[task.task] = max(longest.get(task.task, 0.0), task.end - task.start)
    ranked = sorted(longest.items(), key=lambda item: item[1], reverse=True)[:count]
    return {name: round(seconds, 2) for name, seconds in ranked}


# ---- what the playbook printed --------------------------------------------------------------

FAILURE = re.compile(
    r"(?P<host>[\w.-]+): (?P<verb>[\w ]+?) to (?P<release>\S+)\s+failed at step "
    r"'(?P<step>[^']*)': (?P<cause>.*?);\s+back on (?P<back_on>[^\s,]+), healthy"
)


def failure_message(stdout: str) -> dict[str, str] | None:
    """The first host-cycle failure the playbook printed: host, step, cause, back on which."""
    found = FAILURE.search(stdout)
    if not found:
        return None
    parts = {key: value.strip() for key, value in found.groupdict().items()}
    parts["cause"] = parts["cause"].replace('\\"', '"')[:300]
    return parts


def analysis_verdicts(stdout: str) -> dict[str, str]:
    """Each host's ANALYSIS cell of the last per-host summary table the playbook printed."""
    lines = [line.strip().removeprefix("- ").strip().strip("'\",") for line in stdout.splitlines()]
    headers = [
        index for index, line in enumerate(lines) if line.startswith("HOST ") and "ANALYSIS" in line
    ]
    if not headers:
        return {}
    columns = re.split(r"\s{2,}", lines[headers[-1]])
    column = columns.index("ANALYSIS")
    verdicts = {}
    for line in lines[headers[-1] + 1 :]:
        cells = re.split(r"\s{2,}", line)
        if not line or len(cells) < len(columns) - 1 or line.startswith(("PLAY", "TASK")):
            break
        verdicts[cells[0]] = cells[column]
    return verdicts


# ---- client calls ---------------------------------------------------------------------------


def blast_radius(
    calls: list[tuple[float, bool]],
    started: float,
    ended: float,
    exposure: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Failed client calls of all client calls started while the playbook ran (`started` to
    `ended`), the failed calls outside it (the quiet periods), and the calls while the canary
    took traffic on the bad release (`exposure`: from its enable to the rollback's drain)."""
    during = [ok for at, ok in calls if started <= at <= ended]
    failed = during.count(False)
    ratio = failed / len(during) if during else 0.0
    figures: dict[str, Any] = {
        "calls": len(during),
        "failed_calls": failed,
        "failed_ratio": round(ratio, 4),
        "failed_percent": round(100 * ratio, 2),
        "failed_calls_outside_run": sum(
            1 for at, ok in calls if not ok and not started <= at <= ended
        ),
    }
    if exposure:
        exposed = [ok for at, ok in calls if exposure[0] <= at <= exposure[1]]
        figures["exposure_s"] = round(exposure[1] - exposure[0], 2)
        figures["exposure_calls"] = len(exposed)
        figures["exposure_failed_calls"] = exposed.count(False)
    return figures


def stopped_on_first_host(
    returncode: int,
    agents: list[str],
    cycles: dict[str, HostCycle],
    before: dict[str, Served],
    after: dict[str, Served],
) -> dict[str, Any]:
    """Did the bad release stop on the canary (the first agent), which is back on its release,
    with the others never cycled (no drain in the timeline), on the same version and never
    restarted (the same process start time)?"""
    canary, others = agents[0], agents[1:]
    cycled = sorted(cycles)
    changed = sorted(host for host in agents if after[host].version != before[host].version)
    restarted = sorted(
        host
        for host in others
        if abs(after[host].started_at - before[host].started_at) > RESTART_TOLERANCE_S
    )
    untouched = not (set(cycled) & set(others)) and not changed and not restarted
    return {
        "exit_code": returncode,
        "canary": canary,
        "hosts_cycled": cycled,
        "versions_changed": changed,
        "others_restarted": restarted,
        "canary_back_on": after[canary].version,
        "others_untouched": untouched,
        "stopped": returncode != 0 and cycled == [canary] and untouched,
    }


# ---- one timed upgrade ----------------------------------------------------------------------


def _load() -> McpLoad:
    token = _agent_token()
    endpoints = _endpoints()
    seed_agents(endpoints.agent_urls("/mcp"), token, endpoints.ssl_context)
    return McpLoad(
        endpoints.lb_url("/mcp"), ssl_context=endpoints.ssl_context, token=token,
        tokens=_load_tokens(), rate=LOAD_RATE, threads=4, max_seconds=400, max_requests=12_000,
    )  # fmt: skip


def upgrade(
    source: Path,
    from_version: str,
    to_version: str,
    folder: Path,
    *args: str,
    expect_ok: bool = True,
) -> Run:
    """One upgrade.yml run under MCP load, timed task by task. `expect_ok`: a failed playbook
    raises; otherwise its exit code is kept in the run."""
    _, groups = _inventory()
    handle, name = tempfile.mkstemp(prefix=f"timeline-{to_version}-", suffix=".jsonl", dir=folder)
    os.close(handle)  # the callback appends to it by name
    timeline = Path(name)
    env = {
        "ANSIBLE_CALLBACK_PLUGINS": str(REPO / "bench" / "callback_plugins"),
        "ANSIBLE_CALLBACKS_ENABLED": "mesh_timeline",
        "MESH_TIMELINE_FILE": str(timeline),
    }
    command = _playbook_command(
        "playbooks/upgrade.yml",
        *args,
        "-e", f"mesh_agent_version={to_version}",
        "-e", f"mesh_common_source_dir={source}",
        "-e", f"mesh_upgrade_soak_seconds={SOAK_SECONDS}",
        "-e", f"mesh_upgrade_analysis_seconds={ANALYSIS_SECONDS}",
    )  # fmt: skip
    wall_minus_monotonic = time.time() - time.monotonic()
    with _load() as load:
        time.sleep(QUIET_SECONDS)
        started = time.time()
        done = _execute(command, env=env)
        playbook_s = time.time() - started
        time.sleep(QUIET_SECONDS)
    if expect_ok and done.returncode != 0:
        raise RuntimeError(
            f"the upgrade to {to_version} failed (exit {done.returncode}):\n"
            f"{done.stdout[-4000:]}{done.stderr[-2000:]}"
        )
    tasks = read_timeline(timeline)
    samples = [(sample.started + wall_minus_monotonic, sample) for sample in load.samples]
    return Run(
        from_version,
        to_version,
        started,
        playbook_s,
        tasks,
        host_cycles(tasks, groups["agents"]),
        samples,
        load.rate_achieved,
        {
            "wheelhouse_build_s": task_seconds(tasks, WHEELHOUSE_TASK),
            "slowest_tasks_s": slowest_tasks(tasks),
        },
        done.returncode,
        done.stdout,
    )


def healthy_upgrade(source: Path, from_version: str, to_version: str, folder: Path) -> Run:
    run = upgrade(source, from_version, to_version, folder)
    served = _served_versions(_inventory()[1]["agents"])
    if set(served.values()) != {to_version}:
        raise RuntimeError(f"after the upgrade to {to_version} the agents serve {served}")
    run.extra["analysis_verdicts"] = analysis_verdicts(run.stdout)
    return run


def bad_upgrade(source: Path, bad_version: str, folder: Path) -> Run:
    """The agents alone to the bad release; the run records whether it stopped on the canary."""
    agents = _inventory()[1]["agents"]
    before = _served(agents)
    from_version = before[agents[0]].version
    run = upgrade(source, from_version, bad_version, folder, "--limit", "agents", expect_ok=False)
    after = _served(agents)
    run.extra["stop"] = stopped_on_first_host(run.returncode, agents, run.cycles, before, after)
    run.extra["failure"] = failure_message(run.stdout)
    return run


def run_summary(run: Run) -> dict[str, Any]:
    failures = run.failures
    first_drain = min((c.drain_start for c in run.cycles.values()), default=None)
    return {
        "from": run.from_version,
        "to": run.to_version,
        "playbook_s": round(run.playbook_s, 2),
        "agents_s": round(run.agents_s, 2) if run.agents_s is not None else None,
        "before_agents_s": round(first_drain - run.started, 2) if first_drain else None,
        **run.extra,
        "cycle_s": {host: round(cycle.seconds, 2) for host, cycle in run.cycles.items()},
        "cycle_with_analysis_s": {
            host: round(seconds, 2)
            for host, cycle in run.cycles.items()
            if (seconds := cycle.seconds_with_analysis) is not None
        },
        "analysis_s": {
            host: round(cycle.analysis[1] - cycle.analysis[0], 2)
            for host, cycle in run.cycles.items()
            if cycle.analysis
        },
        "restart_s": {
            host: round(cycle.restart[1] - cycle.restart[0], 2)
            for host, cycle in run.cycles.items()
            if cycle.restart
        },
        "calls": len(run.samples),
        "failed_calls": len(failures),
        "failure_examples": sorted({sample.detail for sample in failures})[:3],
        "calls_per_s": round(run.load_rate, 1),
    }


def bad_run_summary(run: Run, canary: str) -> dict[str, Any]:
    cycle = run.cycles.get(canary)
    exposure = None
    if cycle and cycle.rollback_drained is not None:
        exposure = (cycle.enable_start or cycle.enabled_end, cycle.rollback_drained)
    calls = [(at, sample.ok) for at, sample in run.samples]
    detection = cycle.detection_seconds if cycle else None
    return {
        "from": run.from_version,
        "to": run.to_version,
        "playbook_s": round(run.playbook_s, 2),
        **run.extra,
        "canary_cycle_s": round(cycle.seconds, 2) if cycle else None,
        "time_to_detection_s": round(detection, 2) if detection is not None else None,
        "analysis_failed": cycle.analysis_failed if cycle else False,
        "rollback_s": round(cycle.rollback[1] - cycle.rollback[0], 2)
        if cycle and cycle.rollback
        else None,
        "blast_radius": blast_radius(calls, run.started, run.ended, exposure),
        "failure_examples": sorted({sample.detail for sample in run.failures})[:3],
        "calls_per_s": round(run.load_rate, 1),
    }


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def _per_host(runs: list[Run], agents: list[str], with_analysis: bool) -> dict[str, list[float]]:
    per_host: dict[str, list[float]] = {}
    for host in agents:
        seconds = [
            run.cycles[host].seconds_with_analysis if with_analysis else run.cycles[host].seconds
            for run in runs
            if host in run.cycles
        ]
        per_host[host] = [round(value, 2) for value in seconds if value is not None]
    return per_host


def summarise(runs: list[Run], agents: list[str]) -> dict[str, Any]:
    """The healthy runs: per-host cycles (to enabled, and to the analysis' end), totals, calls."""
    per_host = _per_host(runs, agents, with_analysis=False)
    with_analysis = _per_host(runs, agents, with_analysis=True)
    host_medians = [median for seconds in per_host.values() if (median := _median(seconds))]
    analysed_medians = [m for seconds in with_analysis.values() if (m := _median(seconds))]
    agents_parts = [run.agents_s for run in runs if run.agents_s is not None]
    worst = max(host_medians) if host_medians else None
    worst_analysed = max(analysed_medians) if analysed_medians else None
    failed = [len(run.failures) for run in runs]
    rates = [run.load_rate for run in runs]
    every_run = len(runs)
    return {
        "per_host_cycle_s": {
            host: {"median": _median(seconds), "runs": seconds}
            for host, seconds in per_host.items()
        },
        "per_host_cycle_with_analysis_s": {
            host: {"median": _median(seconds), "runs": seconds}
            for host, seconds in with_analysis.items()
        },
        "total_s": {
            "playbook": {
                "median": _median([run.playbook_s for run in runs]),
                "runs": [round(run.playbook_s, 2) for run in runs],
            },
            "agents_first_drain_to_last_analysis_end": {
                "median": _median(agents_parts),
                "runs": [round(seconds, 2) for seconds in agents_parts],
            },
        },
        "cycle": {
            **{f"{host}_median_s": _median(seconds) for host, seconds in per_host.items()},
            "worst_host_median_s": worst,
            "total_median_s": _median([run.playbook_s for run in runs]),
            "agents_part_median_s": _median(agents_parts),
            "failed_calls": sum(failed),
            "target": CYCLE_TARGET_S,
            # Every host measured in every run, each host's median within the target.
            "met": bool(
                worst is not None
                and worst <= CYCLE_TARGET_S
                and all(len(seconds) == every_run for seconds in per_host.values())
            ),
        },
        "cycle_with_analysis": {
            **{f"{host}_median_s": _median(seconds) for host, seconds in with_analysis.items()},
            "worst_host_median_s": worst_analysed,
            "analysis_window_s": ANALYSIS_SECONDS,
            "target": CYCLE_WITH_ANALYSIS_TARGET_S,
            "met": bool(
                worst_analysed is not None
                and worst_analysed <= CYCLE_WITH_ANALYSIS_TARGET_S
                and all(len(seconds) == every_run for seconds in with_analysis.values())
            ),
        },
        "no_failed_calls": {
            "failed_calls": sum(failed),
            "target": 0,
            "met": not any(failed),
        },
        "load": {
            "failed_calls_per_run": failed,
            "min_calls_per_s": round(min(rates), 1) if rates else 0.0,
            "target": MIN_LOAD_RATE,
            "met": bool(rates) and min(rates) >= MIN_LOAD_RATE,
        },
    }


def summarise_bad(summaries: list[dict[str, Any]], rates: list[float]) -> dict[str, Any]:
    """The bad-release runs (their run summaries): blast radius, stop on the canary, detection."""
    ratios = [summary["blast_radius"]["failed_ratio"] for summary in summaries]
    percents = [summary["blast_radius"]["failed_percent"] for summary in summaries]
    detections = [
        seconds for summary in summaries if (seconds := summary["time_to_detection_s"]) is not None
    ]
    stopped = [bool(summary["stop"]["stopped"]) for summary in summaries]
    return {
        "blast_radius": {
            "worst_failed_percent": max(percents) if percents else None,
            "median_failed_percent": _median(percents),
            "failed_calls": sum(summary["blast_radius"]["failed_calls"] for summary in summaries),
            "calls": sum(summary["blast_radius"]["calls"] for summary in summaries),
            "target": round(100 * BLAST_RADIUS_TARGET, 2),  # percent, as the figures above
            "failed_percent_per_run": percents,
            "met": bool(ratios) and max(ratios) <= BLAST_RADIUS_TARGET,
        },
        "stopped_on_first_host": {
            "runs_stopped": sum(stopped),
            "runs": len(stopped),
            "per_run": stopped,
            "met": bool(stopped) and all(stopped),
        },
        "time_to_detection_s": {
            "median": _median(detections),
            "runs": detections,
        },
        "bad_load": {
            "min_calls_per_s": round(min(rates), 1) if rates else 0.0,
            "target": MIN_LOAD_RATE,
            "met": bool(rates) and min(rates) >= MIN_LOAD_RATE,
        },
    }


# ---- the plot -------------------------------------------------------------------------------


def per_second(run: Run) -> tuple[list[int], list[int], list[int]]:
    """Calls and failed calls in whole 1 s bins since the playbook started (partial ends
    dropped)."""
    offsets = [at - run.started for at, _ in run.samples]
    if not offsets:
        return [], [], []
    first, last = math.ceil(min(offsets)), math.floor(max(offsets))
    seconds = list(range(first, last))
    requests, errors = [0] * len(seconds), [0] * len(seconds)
    for offset, (_, sample) in zip(offsets, run.samples, strict=True):
        index = math.floor(offset) - first
        if 0 <= index < len(seconds):
            requests[index] += 1
            errors[index] += 0 if sample.ok else 1
    return seconds, requests, errors


def zoom_window(run: Run, seconds: list[int]) -> tuple[float, float]:
    """From a little before the first drain to just after the playbook: the agents part."""
    start: float = min(seconds, default=0)
    end = max([*seconds, run.playbook_s]) + 2.5  # room for the last cycle's label
    if run.cycles:
        start = max(start, min(c.drain_start for c in run.cycles.values()) - run.started - 8)
    return start, end


def plot_timeline(run: Run, path: Path) -> None:
    """The whole run on top; below, the agents part: rates, errors and each host's cycle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds, requests, errors = per_second(run)
    window = zoom_window(run, seconds)
    figure, (overview, rates, lanes) = plt.subplots(
        3, 1, figsize=(12, 9), gridspec_kw={"height_ratios": [1.3, 3, 1.4]}
    )
    colours = dict(zip(run.cycles, HOST_COLOURS * len(run.cycles), strict=False))
    for axis in (overview, rates):
        axis.step(seconds, requests, where="post", color="tab:blue", label="MCP calls/s", zorder=3)
        axis.bar(
            seconds, errors, 1.0, align="edge", color="tab:red", label="failed calls/s", zorder=3
        )
        axis.set_ylim(0, max([*requests, 1]) * 1.4)
        axis.set_ylabel("per second")
        axis.grid(axis="y", alpha=0.3)
        axis.axvline(run.playbook_s, color="black", linewidth=1)
    for cycle in run.cycles.values():
        overview.axvspan(*_relative(run, cycle), color=colours[cycle.host], alpha=0.3)
    overview.axvspan(*window, facecolor="none", edgecolor="grey", hatch="//", alpha=0.4)
    if run.cycles:
        first_drain = min(_relative(run, cycle)[0] for cycle in run.cycles.values())
        overview.annotate(
            "pre-flight (wheelhouse, install beside, check-config), registry",
            xy=(first_drain / 2, 0.55),
            xycoords=("data", "axes fraction"),
            ha="center",
            fontsize=8,
        )
    overview.set_title(
        f"Rolling upgrade {run.from_version} -> {run.to_version} under MCP tool calls through "
        f"the LB: {len(run.samples)} calls, {len(run.failures)} failed; playbook "
        f"{run.playbook_s:.1f} s (hatched: shown below), agents {run.agents_s or 0:.1f} s",
        fontsize=10,
    )
    for row, cycle in enumerate(run.cycles.values()):
        _mark_cycle(rates, lanes, run, cycle, colours[cycle.host], row)
    rates.text(run.playbook_s, 0.3, " playbook done", rotation=90, va="bottom", fontsize=8)
    rates.set_xlim(*window)
    lanes.set_xlim(*window)
    lanes.set_yticks(range(len(run.cycles)), list(run.cycles))
    lanes.set_ylim(len(run.cycles) - 0.5, -0.5)
    lanes.grid(axis="x", alpha=0.3)
    lanes.set_xlabel("seconds since ansible-playbook started")
    figure.legend(handles=_legend_handles(rates), loc="lower center", ncol=5, fontsize=8)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _relative(run: Run, cycle: HostCycle) -> tuple[float, float]:
    """Drain start to the end of the cycle's way forward (its analysis, when it had one)."""
    return cycle.drain_start - run.started, cycle.end - run.started


def _mark_cycle(rates: Any, lanes: Any, run: Run, cycle: HostCycle, colour: str, row: int) -> None:
    """Span and lines on the rates; the drain, restart, enable and analysis tasks on the host's
    lane. The label: drain to enabled, then drain to the analysis' end."""
    drain, done = _relative(run, cycle)
    rates.axvspan(drain, done, color=colour, alpha=0.15)
    rates.axvline(drain, color=colour, linestyle="--", linewidth=1.3)
    rates.axvline(cycle.enabled_end - run.started, color=colour, linestyle=":", linewidth=1.8)
    label = f"{cycle.host}\n{cycle.seconds:.1f} s"
    if cycle.seconds_with_analysis is not None:
        label += f"\nwith analysis {cycle.seconds_with_analysis:.1f} s"
    rates.annotate(
        label,
        xy=((drain + done) / 2, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(0, -4),
        textcoords="offset points",
        ha="center",
        va="top",
        fontsize=8,
    )
    lanes.broken_barh([(drain, done - drain)], (row - 0.38, 0.76), color=colour, alpha=0.35)
    segments: list[tuple[float | None, float | None, str]] = [
        (cycle.drain_start, cycle.drain_end, "tab:orange"),
        (cycle.enable_start, cycle.enabled_end, "tab:green"),
    ]
    if cycle.analysis:
        segments.append((*cycle.analysis, "gold"))
    if cycle.restart:
        rates.axvline(cycle.restart[0] - run.started, color=colour, linewidth=1.3)
        segments.append((*cycle.restart, "tab:purple"))
    for start, end, segment_colour in segments:
        if start is not None and end is not None:
            width = max(end - start, 0.08)  # a fast task stays visible
            lanes.broken_barh(
                [(start - run.started, width)], (row - 0.25, 0.5), color=segment_colour
            )
    total = cycle.seconds_with_analysis or cycle.seconds
    lanes.text(done + 0.15, row, f"{total:.1f} s", va="center", fontsize=8)


def _legend_handles(rates: Any) -> list[Any]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles, _ = rates.get_legend_handles_labels()
    return [
        *handles,
        Line2D([], [], color="grey", linestyle="--", label="drain starts"),
        Line2D([], [], color="grey", linestyle="-", label="restart starts"),
        Line2D([], [], color="grey", linestyle=":", label="enabled and UP (reduced weight)"),
        Patch(color="tab:orange", label="drain task"),
        Patch(color="tab:purple", label="switch/restart task"),
        Patch(color="tab:green", label="enable task"),
        Patch(color="gold", label="traffic analysis"),
    ]


# ---- main -----------------------------------------------------------------------------------


@dataclass
class Measured:
    healthy: list[Run]
    bad: list[Run]
    versions: list[str]  # A, B, the bad release
    agents: list[str]


def measure(runs: int, bad_runs: int, folder: Path) -> Measured:
    """Deploy A, then upgrade A -> B -> A -> ...: only the first run installs its release; then
    the bad release, agents only, `bad_runs` times (the first installs it beside, later ones
    find it installed).

    The per-host cycle (drain to analysis end) is the same work either way; what the first run
    adds is pre-flight (wheelhouse build and install), which shows in its playbook total.
    Switching between two installed releases keeps the benchmark inside its time budget.
    """
    snapshot = _source_snapshot(folder)
    versions = [bump_patch(__version__, VERSION_OFFSET + index) for index in range(3)]
    sources = [source_with_version(snapshot, folder, version) for version in versions]
    break_tool(sources[2], "write_file", spare=SMOKE_PREFIX)
    started = time.monotonic()
    _playbook("playbooks/site.yml", "-e", f"mesh_common_source_dir={sources[0]}")
    print(f"deployed {versions[0]} in {time.monotonic() - started:.0f} s", flush=True)
    agents = _inventory()[1]["agents"]
    healthy = []
    for index in range(1, runs + 1):
        to, came_from = index % 2, (index - 1) % 2
        run = healthy_upgrade(sources[to], versions[came_from], versions[to], folder)
        print(f"upgrade {json.dumps(run_summary(run))}", flush=True)
        healthy.append(run)
    bad = []
    for _ in range(bad_runs):
        run = bad_upgrade(sources[2], versions[2], folder)
        print(f"bad release {json.dumps(bad_run_summary(run, agents[0]))}", flush=True)
        bad.append(run)
        if run.returncode == 0:  # the bad release went through: put the good one back
            good = versions.index(run.from_version)
            _playbook(
                "playbooks/upgrade.yml", "--limit", "agents",
                "-e", f"mesh_agent_version={versions[good]}",
                "-e", f"mesh_common_source_dir={sources[good]}",
            )  # fmt: skip
    return Measured(healthy, bad, versions, agents)


def take_down_lab() -> None:
    _lab("down")


def main(runs: int = RUNS, keep_lab: bool = False, bad_runs: int = BAD_RUNS) -> dict[str, Any]:
    """`keep_lab`: leave the deployed lab up when the runs succeed (`make bench` measures
    restore on it next, then calls take_down_lab); it goes down on a failure either way."""
    load_before = [round(value, 2) for value in os.getloadavg()]
    if _lab_is_up():  # left over from an interrupted run of this benchmark
        _lab("down")
    folder = Path(tempfile.mkdtemp(prefix="bench-upgrade-"))
    measured_ok = False
    try:
        _lab("up", "--agents", str(AGENTS))
        measured = measure(runs, bad_runs, folder)
        measured_ok = True
    finally:
        try:
            if not (keep_lab and measured_ok):
                _lab("down")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    versions, agents = measured.versions, measured.agents
    bad_summaries = [bad_run_summary(run, agents[0]) for run in measured.bad]
    document: dict[str, Any] = {
        "benchmark": "upgrade",
        "statistic": (
            f"median of {runs} rolling upgrades to a healthy release and {bad_runs} upgrades to "
            f"a bad release, on one lab of {AGENTS} agents"
        ),
        "case": (
            f"site.yml deploys {versions[0]}; healthy run 1 upgrades to {versions[1]}, which "
            "pre-flight builds and installs beside the running release; the later healthy runs "
            "switch back and forth between these two installed releases. Registry first, then "
            "the agents one by one, the first alone (canary); each host: drain, activate with a "
            f"smoke test, enable at a reduced weight, {ANALYSIS_SECONDS} s traffic analysis, "
            f"full weight. Then the agents alone (--limit agents) to {versions[2]}, whose "
            "write_file raises on every call: built once, installed beside by the first bad "
            "run; the rollback leaves the hosts on the good release, and the later bad runs "
            "reuse the installed bad release"
        ),
        "target": (
            f"per-host cycle with analysis (start of drain to end of the traffic analysis) at "
            f"most {CYCLE_TARGET_S:g} s + the {ANALYSIS_SECONDS} s window = "
            f"{CYCLE_WITH_ANALYSIS_TARGET_S:g} s, with no failed client call; drain to enabled "
            f"and UP at most {CYCLE_TARGET_S:g} s with the {SOAK_SECONDS} s soak; blast radius "
            f"of a bad release (failed client calls / all client calls while the playbook ran) "
            f"at most {100 * BLAST_RADIUS_TARGET:g} %, stopped on the first host"
        ),
        "soak_s": SOAK_SECONDS,
        "analysis_window_s": ANALYSIS_SECONDS,
        "load_generator": (
            f"McpLoad: MCP tools/call write_file and read_file in turn through the LB's /mcp at "
            f"{LOAD_RATE:g} calls/s from 4 threads"
        ),
        "bad_release": {
            "version": versions[2],
            "change": "break_tool(source, 'write_file', spare=SMOKE_PREFIX): every client's "
            "write_file raises, the smoke test's works (it must pass the smoke test to be "
            "judged by its traffic)",
            "built": "once; the first bad run installs it beside, later runs reuse it installed",
            "time_to_detection": "end of the canary's enable (it takes traffic) to the end of "
            "its traffic analysis",
            "blast_radius": "failed client calls / all client calls started while the playbook "
            "ran; exposure: calls from the canary's enable to the end of the rollback's drain",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
        },
        **summarise(measured.healthy, agents),
        **summarise_bad(bad_summaries, [run.load_rate for run in measured.bad]),
        "runs": [run_summary(run) for run in measured.healthy],
        "bad_runs": bad_summaries,
    }
    playbooks = [run.playbook_s for run in measured.healthy]
    plotted = min(
        measured.healthy, key=lambda run: abs(run.playbook_s - statistics.median(playbooks))
    )
    plot_timeline(plotted, PLOT)
    document["plot"] = {"file": PLOT.name, "run": f"{plotted.from_version} -> {plotted.to_version}"}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    return document


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.upgrade")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"healthy upgrades (default {RUNS})")
    parser.add_argument(
        "--bad-runs",
        type=int,
        default=BAD_RUNS,
        help=f"upgrades to the bad release (default {BAD_RUNS})",
    )
    arguments = parser.parse_args()
    print(json.dumps(main(arguments.runs, bad_runs=arguments.bad_runs), indent=2))
