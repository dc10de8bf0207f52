"""Benchmark: a rolling upgrade of three agents under load through the load balancer.

One lab (3 agents) is deployed once with `site.yml` (release A, built from a copy of the
project's source with a new patch version); then RUNS upgrades follow: A -> B (pre-flight
builds and installs B beside A), then B -> A, A -> B, ... between the two installed releases,
which keeps the benchmark inside its time budget (see `measure`). The bench versions sit far
above the source's own (patch + 900) so they never share a wheelhouse cache entry with the
test releases.

During each run a LoadGenerator sends GET /health through the LB (25 req/s) and the timeline
callback records every task per host. Per host, the cycle runs from the start of the drain
task to the end of the enable task (enabled and UP in the LB); the restart mark is the task
that switches the host to the new release. Totals: the playbook's wall time and its agents
part (first drain to last enable). Medians over the runs; target (issues #6, #9): a cycle of
at most 5 s per host with the default 2 s soak.

Writes bench/results/upgrade.json and a timeline of the median run, upgrade_timeline.png.
Run alone: `.venv/bin/python -m bench.upgrade [--runs N]`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
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
from tests.lab.fleet.loadgen import LoadGenerator, Sample
from tests.lab.fleet.releases import bump_patch, source_with_version

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "upgrade.json"
PLOT = REPO / "bench" / "results" / "upgrade_timeline.png"
LAB = "bupg"
AGENTS = 3
INVENTORY = REPO / "inventories" / "lab" / f"{LAB}.yml"
BIN = Path(sys.executable).parent
RUNS = 3
SOAK_SECONDS = 2
CYCLE_TARGET_S = 5.0
LOAD_RATE = 25.0  # requests per second through the LB
MIN_LOAD_RATE = 20.0
VERSION_OFFSET = 900
QUIET_SECONDS = 1.0  # load before and after the playbook, so the plot shows the steady state

# Task names recorded by the timeline callback (prefixes: versions are part of some names).
DRAIN_TASK = "Drain the host in the load balancer"
ENABLE_TASK = "Enable the host in the load balancer and wait until it is UP"
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


@dataclass
class HostCycle:
    host: str
    drain_start: float
    enabled_end: float
    drain_end: float | None = None
    restart: tuple[float, float] | None = None
    enable_start: float | None = None

    @property
    def seconds(self) -> float:
        return self.enabled_end - self.drain_start


@dataclass
class Run:
    from_version: str
    to_version: str
    started: float  # time.time() when ansible-playbook started
    playbook_s: float
    tasks: list[TaskTime]
    cycles: dict[str, HostCycle]
    samples: list[tuple[float, Sample]]  # (time.time() of the request, sample)
    load_rate: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def agents_s(self) -> float | None:
        if not self.cycles:
            return None
        cycles = self.cycles.values()
        return max(c.enabled_end for c in cycles) - min(c.drain_start for c in cycles)

    @property
    def failures(self) -> list[Sample]:
        return [sample for _, sample in self.samples if not sample.ok]


# ---- the lab and the playbooks --------------------------------------------------------------


def _run(args: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> str:
    done = subprocess.run(
        args,
        cwd=REPO,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
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


def _playbook(playbook: str, *args: str, env: dict[str, str] | None = None) -> str:
    command = [str(BIN / "ansible-playbook"), "-i", str(INVENTORY), playbook, *args]
    return _run(command, env=env)


def _inventory() -> tuple[dict[str, str], dict[str, list[str]]]:
    """Host addresses and groups of the lab."""
    data = yaml.safe_load(INVENTORY.read_text())["all"]
    hosts = {name: str(values["lab_address"]) for name, values in data["hosts"].items()}
    groups = {name: list(body["hosts"]) for name, body in data["children"].items()}
    return hosts, groups


def _source_snapshot(folder: Path) -> Path:
    """A copy of what the runtime is built from, so edits made meanwhile do not leak in."""
    snapshot = folder / "source"
    snapshot.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, snapshot / name)
    ignored = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(REPO / "runtime", snapshot / "runtime", ignore=ignored)
    return snapshot


def _served_versions(hosts: dict[str, str], agents: list[str]) -> dict[str, str]:
    versions = {}
    for name in agents:
        with urllib.request.urlopen(f"http://{hosts[name]}:8080/health", timeout=10) as answer:
            versions[name] = json.loads(answer.read())["version"]
    return versions


# ---- the timeline ---------------------------------------------------------------------------


def read_timeline(path: Path) -> list[TaskTime]:
    if not path.exists():
        return []
    tasks = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("status") != "skipped":
            name = entry["task"].split(" : ", 1)[-1]  # without the "role : " of role tasks
            tasks.append(TaskTime(name, entry["host"], entry["start"], entry["end"]))
    return tasks


def host_cycles(tasks: list[TaskTime], agents: list[str]) -> dict[str, HostCycle]:
    """Per agent: drain start to enabled end, with the marks in between (those present)."""
    cycles = {}
    for host in agents:
        mine = [task for task in tasks if task.host == host]
        drains = [task for task in mine if task.task.startswith(DRAIN_TASK)]
        enables = [task for task in mine if task.task.startswith(ENABLE_TASK)]
        if not drains or not enables:
            continue
        restarts = [task for task in mine if task.task.startswith(RESTART_TASKS)]
        cycles[host] = HostCycle(
            host,
            drain_start=min(task.start for task in drains),
            drain_end=min(task.end for task in drains),
            enabled_end=max(task.end for task in enables),
            enable_start=max(task.start for task in enables),
            restart=(restarts[0].start, restarts[0].end) if restarts else None,
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


# ---- one timed upgrade ----------------------------------------------------------------------


def upgrade(source: Path, from_version: str, to_version: str, folder: Path) -> Run:
    hosts, groups = _inventory()
    lb_url = f"http://{hosts[groups['loadbalancer'][0]]}:80/health"
    handle, name = tempfile.mkstemp(prefix=f"timeline-{to_version}-", suffix=".jsonl", dir=folder)
    os.close(handle)  # the callback appends to it by name
    timeline = Path(name)
    env = {
        "ANSIBLE_CALLBACK_PLUGINS": str(REPO / "bench" / "callback_plugins"),
        "ANSIBLE_CALLBACKS_ENABLED": "mesh_timeline",
        "MESH_TIMELINE_FILE": str(timeline),
    }
    wall_minus_monotonic = time.time() - time.monotonic()
    with LoadGenerator(lb_url, rate=LOAD_RATE, threads=4, max_seconds=400) as load:
        time.sleep(QUIET_SECONDS)
        started = time.time()
        _playbook(
            "playbooks/upgrade.yml",
            "-e",
            f"mesh_agent_version={to_version}",
            "-e",
            f"mesh_common_source_dir={source}",
            "-e",
            f"mesh_upgrade_soak_seconds={SOAK_SECONDS}",
            env=env,
        )
        playbook_s = time.time() - started
        time.sleep(QUIET_SECONDS)
    served = _served_versions(hosts, groups["agents"])
    if set(served.values()) != {to_version}:
        raise RuntimeError(f"after the upgrade to {to_version} the agents serve {served}")
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
    )


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
        "restart_s": {
            host: round(cycle.restart[1] - cycle.restart[0], 2)
            for host, cycle in run.cycles.items()
            if cycle.restart
        },
        "requests": len(run.samples),
        "failed_requests": len(failures),
        "failure_examples": sorted({sample.detail for sample in failures})[:3],
        "load_req_per_s": round(run.load_rate, 1),
    }


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def summarise(runs: list[Run], agents: list[str]) -> dict[str, Any]:
    per_host = {
        host: [round(run.cycles[host].seconds, 2) for run in runs if host in run.cycles]
        for host in agents
    }
    host_medians = [median for seconds in per_host.values() if (median := _median(seconds))]
    agents_parts = [run.agents_s for run in runs if run.agents_s is not None]
    worst = max(host_medians) if host_medians else None
    failed = [len(run.failures) for run in runs]
    rates = [run.load_rate for run in runs]
    return {
        "per_host_cycle_s": {
            host: {"median": _median(seconds), "runs": seconds}
            for host, seconds in per_host.items()
        },
        "total_s": {
            "playbook": {
                "median": _median([run.playbook_s for run in runs]),
                "runs": [round(run.playbook_s, 2) for run in runs],
            },
            "agents_first_drain_to_last_enable": {
                "median": _median(agents_parts),
                "runs": [round(seconds, 2) for seconds in agents_parts],
            },
        },
        "cycle": {
            **{f"{host}_median_s": _median(seconds) for host, seconds in per_host.items()},
            "worst_host_median_s": worst,
            "total_median_s": _median([run.playbook_s for run in runs]),
            "agents_part_median_s": _median(agents_parts),
            "failed_requests": sum(failed),
            "target": CYCLE_TARGET_S,
            # Every host measured in every run, each host's median within the target.
            "met": bool(
                worst is not None
                and worst <= CYCLE_TARGET_S
                and all(len(seconds) == len(runs) for seconds in per_host.values())
            ),
        },
        "no_dropped_requests": {
            "failed_requests": sum(failed),
            "target": 0,
            "met": not any(failed),
        },
        "load": {
            "failed_requests_per_run": failed,
            "min_req_per_s": round(min(rates), 1),
            "target": MIN_LOAD_RATE,
            "met": min(rates) >= MIN_LOAD_RATE,
        },
    }


# ---- the plot -------------------------------------------------------------------------------


def per_second(run: Run) -> tuple[list[int], list[int], list[int]]:
    """Requests and errors in whole 1 s bins since the playbook started (partial ends dropped)."""
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
        axis.step(seconds, requests, where="post", color="tab:blue", label="requests/s", zorder=3)
        axis.bar(seconds, errors, 1.0, align="edge", color="tab:red", label="errors/s", zorder=3)
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
        f"Rolling upgrade {run.from_version} -> {run.to_version} through the LB: "
        f"{len(run.samples)} requests, {len(run.failures)} failed; playbook "
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
    figure.legend(handles=_legend_handles(rates), loc="lower center", ncol=8, fontsize=8)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _relative(run: Run, cycle: HostCycle) -> tuple[float, float]:
    return cycle.drain_start - run.started, cycle.enabled_end - run.started


def _mark_cycle(rates: Any, lanes: Any, run: Run, cycle: HostCycle, colour: str, row: int) -> None:
    """Span and lines on the rates; the drain, restart and enable tasks on the host's lane."""
    drain, done = _relative(run, cycle)
    rates.axvspan(drain, done, color=colour, alpha=0.15)
    rates.axvline(drain, color=colour, linestyle="--", linewidth=1.3)
    rates.axvline(done, color=colour, linestyle=":", linewidth=1.8)
    rates.annotate(
        f"{cycle.host}\n{cycle.seconds:.1f} s",
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
    if cycle.restart:
        rates.axvline(cycle.restart[0] - run.started, color=colour, linewidth=1.3)
        segments.append((*cycle.restart, "tab:purple"))
    for start, end, segment_colour in segments:
        if start is not None and end is not None:
            width = max(end - start, 0.08)  # a fast task stays visible
            lanes.broken_barh(
                [(start - run.started, width)], (row - 0.25, 0.5), color=segment_colour
            )
    lanes.text(done + 0.15, row, f"{cycle.seconds:.1f} s", va="center", fontsize=8)


def _legend_handles(rates: Any) -> list[Any]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles, _ = rates.get_legend_handles_labels()
    return [
        *handles,
        Line2D([], [], color="grey", linestyle="--", label="drain starts"),
        Line2D([], [], color="grey", linestyle="-", label="restart starts"),
        Line2D([], [], color="grey", linestyle=":", label="enabled and UP"),
        Patch(color="tab:orange", label="drain task"),
        Patch(color="tab:purple", label="switch/restart task"),
        Patch(color="tab:green", label="enable task"),
    ]


# ---- main -----------------------------------------------------------------------------------


def measure(runs: int, folder: Path) -> tuple[list[Run], list[str], list[str]]:
    """Deploy A, then upgrade A -> B -> A -> ...: only the first run installs its release.

    The per-host cycle (drain to enabled) is the same work either way; what the first run
    adds is pre-flight (wheelhouse build and install), which shows in its playbook total.
    Switching between two installed releases keeps the benchmark inside its time budget.
    """
    snapshot = _source_snapshot(folder)
    versions = [bump_patch(__version__, VERSION_OFFSET + index) for index in range(2)]
    sources = [source_with_version(snapshot, folder, version) for version in versions]
    started = time.monotonic()
    _playbook("playbooks/site.yml", "-e", f"mesh_common_source_dir={sources[0]}")
    print(f"deployed {versions[0]} in {time.monotonic() - started:.0f} s", flush=True)
    measured = []
    for index in range(1, runs + 1):
        to, came_from = index % 2, (index - 1) % 2
        run = upgrade(sources[to], versions[came_from], versions[to], folder)
        print(f"upgrade {json.dumps(run_summary(run))}", flush=True)
        measured.append(run)
    return measured, versions, _inventory()[1]["agents"]


def take_down_lab() -> None:
    _lab("down")


def main(runs: int = RUNS, keep_lab: bool = False) -> dict[str, Any]:
    """`keep_lab`: leave the deployed lab up when the runs succeed (`make bench` measures
    restore on it next, then calls take_down_lab); it goes down on a failure either way."""
    load_before = [round(value, 2) for value in os.getloadavg()]
    if _lab_is_up():  # left over from an interrupted run of this benchmark
        _lab("down")
    folder = Path(tempfile.mkdtemp(prefix="bench-upgrade-"))
    measured_ok = False
    try:
        _lab("up", "--agents", str(AGENTS))
        measured, versions, agents = measure(runs, folder)
        measured_ok = True
    finally:
        try:
            if not (keep_lab and measured_ok):
                _lab("down")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    document: dict[str, Any] = {
        "benchmark": "upgrade",
        "statistic": f"median of {runs} rolling upgrades on one lab of {AGENTS} agents",
        "case": (
            f"site.yml deploys {versions[0]}; run 1 upgrades to {versions[1]}, which pre-flight "
            "builds and installs beside the running release; the later runs switch back and "
            "forth between these two installed releases (pre-flight finds them installed). "
            "Registry first, then the agents one by one. The per-host cycle is the same work "
            "in every run; the playbook total of run 1 includes the install"
        ),
        "target": (
            f"per-host cycle (start of drain to enabled and UP in the LB) at most "
            f"{CYCLE_TARGET_S:g} s with the {SOAK_SECONDS} s soak"
        ),
        "soak_s": SOAK_SECONDS,
        "load_generator": f"GET /health through the LB at {LOAD_RATE:g} req/s from 4 threads",
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
        },
        **summarise(measured, agents),
        "runs": [run_summary(run) for run in measured],
    }
    playbooks = [run.playbook_s for run in measured]
    plotted = min(measured, key=lambda run: abs(run.playbook_s - statistics.median(playbooks)))
    plot_timeline(plotted, PLOT)
    document["plot"] = {"file": PLOT.name, "run": f"{plotted.from_version} -> {plotted.to_version}"}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    return document


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.upgrade")
    parser.add_argument("--runs", type=int, default=RUNS)
    print(json.dumps(main(parser.parse_args().runs), indent=2))
