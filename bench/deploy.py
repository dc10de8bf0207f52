"""Benchmark: a fresh `site.yml` deploy of a new lab and the idempotent second run, by size.

For each size (agent hosts; every lab has one more host, lb1, for the registry and the load
balancer): bring up a fresh lab (`bdep`), time `ansible-playbook playbooks/site.yml` from bare
hosts to a verified mesh, then time a second run on the same lab (its SSH connections closed
first, as for a run some time later) and check it changed nothing; take the lab down. The
runtime is deployed from a snapshot of the source taken at the start, with its wheelhouse
built beforehand into a private cache, so the figures are the deploy itself and a working
tree edited meanwhile does not turn a second run into a reinstall.
The timeline callback records per-task times of the largest size: the tasks that take the
most are in the results. On the lab of TUNING_SIZE agents, before it goes down,
bench/tuning.py compares Ansible configurations on the same idempotent run
(bench/results/tuning.json); the second run just timed is the project configuration's figure.

Scaling target from issue #9: 12 agent hosts take at most 2x the time of one (fresh deploy).
Beside each fresh deploy, the share of the machine's CPU time that was busy (from
/proc/stat; the lab's hosts share this kernel) tells whether a size is bound by CPU.
The whole of `make bench` has to fit in minutes, so each size gets `runs` fresh labs (default
one: a single run, not a median; say --runs 3 when running this alone).

Writes bench/results/deploy.json and deploy_scaling.png.
Run alone: `.venv/bin/python -m bench.deploy [--sizes 1,3,6,12] [--runs 1] [--no-tuning]
[--tuning-size 6]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import tuning
from bench.tuning import (
    Workspace,
    changed_total,
    close_ssh_masters,
    hosts_of,
    inventory_of,
    lab,
    site,
    top_tasks,
)

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "deploy.json"
PLOT = REPO / "bench" / "results" / "deploy_scaling.png"
LAB = "bdep"
SIZES = (1, 3, 6, 12)
# The tuning comparison runs on this size's lab: 7 hosts, more than the 5 forks of Ansible's
# defaults, at about half the time of the 13-host lab (the suite's time bound).
TUNING_SIZE = 6
RUNS = 1
SCALING_TARGET = 2.0


def _summary(values: list[float], digits: int = 1) -> dict[str, Any]:
    return {
        "median": round(statistics.median(values), digits),
        "runs": [round(v, digits) for v in values],
    }


def cpu_times(stat: str | None = None) -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot; idle and iowait count as not busy."""
    text = stat if stat is not None else Path("/proc/stat").read_text()
    fields = [int(value) for value in text.splitlines()[0].split()[1:]]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal; guest is in user
    return total - fields[3] - fields[4], total


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Share of the CPU time between two cpu_times() readings that was busy."""
    total = after[1] - before[1]
    return round((after[0] - before[0]) / total, 3) if total > 0 else 0.0


def _timeline(directory: Path, name: str, keep: bool) -> Path | None:
    return directory / f"{name}.jsonl" if keep else None


def measure(
    agents: int, runs: int, workspace: Workspace, last: bool, compare: bool
) -> dict[str, Any]:
    """`runs` fresh labs of this size; the last one of the largest size keeps its timelines,
    the last one of the tuning size runs the tuning comparison (`compare`)."""
    fresh, again, lab_up, changed_again, hosts = [], [], [], [], 0
    fresh_busy: list[float] = []
    timelines = Path(tempfile.mkdtemp(prefix="bdep-timeline-", dir=workspace.root))
    result: dict[str, Any] = {"agents": agents}
    for attempt in range(runs):
        keep = last and attempt == runs - 1
        tune = compare and attempt == runs - 1
        lab_up.append(lab(LAB, "up", "--agents", str(agents)))
        try:
            inventory = inventory_of(LAB)
            hosts = len(hosts_of(inventory))
            before = cpu_times()
            seconds, _ = site(inventory, workspace, timeline=_timeline(timelines, "fresh", keep))
            fresh_busy.append(busy_share(before, cpu_times()))
            fresh.append(seconds)
            again_timeline = _timeline(timelines, "again", keep)
            close_ssh_masters(inventory)  # a later run, not one riding on the deploy's connections
            seconds, output = site(inventory, workspace, timeline=again_timeline)
            again.append(seconds)
            changed_again.append(changed_total(output))
            if tune:
                project_run = (seconds, changed_again[-1])
                result["tuning"] = tuning.compare(inventory, workspace, project_run=project_run)
        finally:
            lab(LAB, "down")
    result |= {
        "hosts": hosts,
        "fresh_deploy_s": _summary(fresh),
        "fresh_deploy_cpu_busy": _summary(fresh_busy, 3),
        "second_run_s": _summary(again),
        "second_run_changed": changed_again,
        "lab_up_s": _summary(lab_up, 2),
    }
    if last:
        result["top_tasks"] = {
            "fresh": top_tasks(timelines / "fresh.jsonl"),
            "second_run": top_tasks(timelines / "again.jsonl"),
        }
    return result


def plot(by_size: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hosts = [size["hosts"] for size in by_size]
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=110)
    lines = (("fresh_deploy_s", "fresh deploy"), ("second_run_s", "idempotent second run"))
    for key, label in lines:
        axes.plot(hosts, [size[key]["median"] for size in by_size], marker="o", label=label)
    budget = SCALING_TARGET * by_size[0]["fresh_deploy_s"]["median"]
    target = f"target: {SCALING_TARGET:g}x the fresh deploy of {hosts[0]} hosts"
    axes.axhline(budget, color="grey", linestyle="--", label=target)
    axes.set_xlabel("hosts in the lab (agents + lb1)")
    axes.set_ylabel("seconds (site.yml)")
    axes.set_xticks(hosts)
    axes.set_ylim(bottom=0)
    axes.set_title("site.yml wall time against lab size")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main(
    sizes: tuple[int, ...] = SIZES,
    runs: int = RUNS,
    compare: bool = True,
    tuning_size: int = TUNING_SIZE,
) -> dict[str, Any]:
    if tuning_size not in sizes:
        tuning_size = sizes[-1]
    workspace = Workspace()
    try:
        build_s = workspace.build_wheelhouse()
        by_size = []
        for agents in sizes:
            tune = compare and agents == tuning_size
            by_size.append(measure(agents, runs, workspace, agents == sizes[-1], tune))
            print(json.dumps(by_size[-1]), file=sys.stderr, flush=True)  # progress
    finally:
        workspace.remove()
    comparison = next((size.pop("tuning") for size in by_size if "tuning" in size), None)
    document: dict[str, Any] = {
        "benchmark": "deploy",
        "statistic": (
            (f"median of {runs} fresh labs" if runs > 1 else "one fresh lab (a single run)")
            + " per size, then one idempotent second run on each; wheelhouse built beforehand"
        ),
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": list(os.getloadavg())},
        "wheelhouse_build_s": round(build_s, 1),
        "sizes": by_size,
    }
    if len(by_size) > 1:
        first, largest = by_size[0], by_size[-1]
        ratio = largest["fresh_deploy_s"]["median"] / first["fresh_deploy_s"]["median"]
        document["scaling"] = {
            "smallest_hosts": first["hosts"],
            "largest_hosts": largest["hosts"],
            "ratio": round(ratio, 2),
            "second_run_ratio": round(
                largest["second_run_s"]["median"] / first["second_run_s"]["median"], 2
            ),
            "smallest_cpu_busy": first["fresh_deploy_cpu_busy"]["median"],
            "largest_cpu_busy": largest["fresh_deploy_cpu_busy"]["median"],
            "target": SCALING_TARGET,
            "met": ratio <= SCALING_TARGET,
        }
        plot(by_size, PLOT)
    document["idempotent"] = {
        "changed_on_second_runs": sum(sum(s["second_run_changed"]) for s in by_size),
        "met": all(c == 0 for s in by_size for c in s["second_run_changed"]),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    if comparison is not None:
        tuning.write(tuning.describe(comparison, LAB))
    return document


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.deploy")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="agent host counts")
    parser.add_argument("--runs", type=int, default=RUNS, help="fresh labs per size")
    parser.add_argument("--no-tuning", action="store_true", help="skip the tuning comparison")
    parser.add_argument("--tuning-size", type=int, default=TUNING_SIZE, help="agents of its lab")
    options = parser.parse_args()
    sizes = tuple(int(size) for size in options.sizes.split(","))
    document = main(sizes, options.runs, not options.no_tuning, options.tuning_size)
    print(json.dumps(document, indent=2))
