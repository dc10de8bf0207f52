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

CPU per added agent (issue #22's target: at most 8 CPU-seconds): the busy CPU time of the
whole machine during each fresh deploy (from /proc/stat, in seconds), and beside it the part
the deploy itself used: the controller's (ansible-playbook, its workers and ssh connections,
run in a cgroup of their own) and the lab hosts' (their cgroups), which other work on a shared
machine does not blur. The per-added-agent figure is the slope from the smallest size.

`--baseline REF` deploys another commit's playbooks and roles (`git archive REF`) beside this
tree's on the same sizes, interleaved lab by lab (A B A B), so a change is compared on the
machine's load of the moment rather than against old figures.

Writes bench/results/deploy.json and deploy_scaling.png.
Run alone: `.venv/bin/python -m bench.deploy [--sizes 1,3,6,12] [--runs 1] [--no-tuning]
[--tuning-size 6] [--lab bdep] [--baseline REF]` (lab name: also $MESH_BENCH_DEPLOY_LAB).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import tuning
from bench.callback_plugins.mesh_timeline import cgroup2_root
from bench.tuning import (
    Workspace,
    changed_total,
    close_ssh_masters,
    hosts_of,
    inventory_of,
    lab,
    run,
    site,
    top_tasks,
)

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "deploy.json"
PLOT = REPO / "bench" / "results" / "deploy_scaling.png"
PROFILE = REPO / "bench" / "results" / "deploy_profile.json"
LAB = os.environ.get("MESH_BENCH_DEPLOY_LAB", "bdep")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SIZES = (1, 3, 6, 12)
# The tuning comparison runs on this size's lab: 7 hosts, more than the 5 forks of Ansible's
# defaults, at about half the time of the 13-host lab (the suite's time bound).
TUNING_SIZE = 6
RUNS = 1
SCALING_TARGET = 2.0
# Issue #22: CPU seconds (controller and hosts) each agent host beyond the first may add.
CPU_TARGET_S = 8.0


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


def usage_s(group: Path) -> float:
    """CPU seconds a cgroup v2 group (and its descendants) used; 0 when it is gone."""
    try:
        for line in (group / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
    except OSError:
        return 0.0
    return 0.0


def lab_cgroup(name: str) -> Path | None:
    """The lab's cgroup v2 directory (lab/cgroups.py: mcp-mesh-lab/LAB/HOST)."""
    root = cgroup2_root()
    return root / "mcp-mesh-lab" / name if root is not None else None


def hosts_cpu_s(name: str) -> dict[str, float]:
    directory = lab_cgroup(name)
    if directory is None or not directory.is_dir():
        return {}
    return {group.name: usage_s(group) for group in directory.iterdir() if group.is_dir()}


class ControllerGroup:
    """A cgroup v2 group the timed ansible-playbook runs in, so its CPU time (workers and ssh
    connections included) can be read apart from the rest of the machine."""

    def __init__(self) -> None:
        root = cgroup2_root()
        self.path = root / f"mesh-bench-deploy-{os.getpid()}" if root is not None else None
        if self.path is not None:
            try:
                self.path.mkdir(exist_ok=True)
            except OSError:
                self.path = None

    def join(self) -> Callable[[], None] | None:
        if self.path is None:
            return None
        procs = str(self.path / "cgroup.procs")

        def move() -> None:
            with open(procs, "w") as handle:  # runs between fork and exec
                handle.write(str(os.getpid()))

        return move

    def used_s(self) -> float:
        return usage_s(self.path) if self.path is not None else 0.0

    def remove(self) -> None:
        if self.path is not None:
            # ssh masters of the last lab may linger in it until the lab is down
            with contextlib.suppress(OSError):
                self.path.rmdir()


@dataclass
class Variant:
    """The checkout a deploy runs: this tree, or another commit's files (a baseline)."""

    name: str
    tree: Path
    cache: Path

    def extra_vars(self) -> list[str]:
        return ["-e", f"mesh_common_wheelhouse_cache_dir={self.cache}"]


def baseline_variant(ref: str, workspace: Workspace) -> Variant:
    """`git archive REF` of the repository, with a wheelhouse cache of its own."""
    tree = workspace.root / "baseline"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref], cwd=REPO, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    cache = workspace.root / "wheelhouse-baseline"
    cache.mkdir()
    return Variant(f"baseline {ref}", tree, cache)


def build_wheelhouse(variant: Variant, workspace: Workspace) -> float:
    """Build the snapshot's wheelhouse with the variant's module, so no timed run pays."""
    arguments = {"source_dir": str(workspace.source), "cache_dir": str(variant.cache)}
    arguments["python"] = sys.executable
    command = [str(tuning.BIN / "ansible"), "localhost", "-c", "local", "-i", "localhost,"]
    command += ["-e", f"ansible_python_interpreter={sys.executable}"]
    command += ["-m", "mcp_mesh.ops.mesh_wheelhouse", "-a", json.dumps(arguments)]
    config = {"ANSIBLE_CONFIG": str(variant.tree / "ansible.cfg")}
    return run(command, config, cwd=variant.tree)[0]


def cpu_profile(samples: Path, agents: list[str]) -> list[dict[str, Any]]:
    """Per task (summed over the plays that run it), the CPU seconds between its start and the
    next task's: the controller's, all hosts', and the agent hosts' mean."""
    rows = [json.loads(line) for line in samples.read_text().splitlines() if line.strip()]
    totals: dict[str, dict[str, float]] = {}
    for current, following in itertools.pairwise(rows):
        entry = totals.setdefault(
            current["task"], {"controller_s": 0.0, "hosts_s": 0.0, "per_agent_host_s": 0.0}
        )
        if current["controller_us"] is not None and following["controller_us"] is not None:
            entry["controller_s"] += (following["controller_us"] - current["controller_us"]) / 1e6
        spent = {
            host: (following["hosts_us"].get(host, used) - used) / 1e6
            for host, used in current["hosts_us"].items()
        }
        entry["hosts_s"] += sum(spent.values())
        if agents:
            entry["per_agent_host_s"] += sum(spent.get(a, 0.0) for a in agents) / len(agents)
    ranked = sorted(
        totals.items(), key=lambda item: -(item[1]["controller_s"] + item[1]["hosts_s"])
    )
    return [{"task": task, **{k: round(v, 2) for k, v in t.items()}} for task, t in ranked]


def fresh_deploy(
    inventory: Path,
    workspace: Workspace,
    variant: Variant,
    controller: ControllerGroup,
    timeline: Path,
    cpu_samples: Path,
) -> dict[str, float]:
    """One timed site.yml on fresh hosts: wall seconds and CPU seconds (machine, parts)."""
    env = {
        "MESH_TIMELINE_CPU_FILE": str(cpu_samples),
        "MESH_TIMELINE_HOST_CGROUPS": str(lab_cgroup(LAB)),
    }
    hosts_before, controller_before = hosts_cpu_s(LAB), controller.used_s()
    before = cpu_times()
    seconds, _ = site(
        inventory,
        workspace,
        timeline=timeline,
        env=env,
        tree=variant.tree,
        preexec=controller.join(),
        extra=variant.extra_vars(),
    )
    after = cpu_times()
    hosts_after = hosts_cpu_s(LAB)
    return {
        "seconds": seconds,
        "busy": busy_share(before, after),
        "machine_cpu_s": (after[0] - before[0]) / CLOCK_TICKS,
        "controller_cpu_s": controller.used_s() - controller_before,
        "hosts_cpu_s": sum(hosts_after[h] - hosts_before.get(h, 0.0) for h in hosts_after),
    }


def measure(
    agents: int,
    runs: int,
    workspace: Workspace,
    variants: list[Variant],
    last: bool,
    compare: bool,
    controller: ControllerGroup,
) -> dict[str, dict[str, Any]]:
    """`runs` fresh labs of this size per variant, interleaved (A B A B); the last one of the
    largest size keeps its timelines, the last one of the tuning size runs the tuning
    comparison (`compare`, the first variant's: this tree)."""
    figures: dict[str, dict[str, list[Any]]] = {
        v.name: {key: [] for key in ("fresh", "again", "lab_up", "changed", "deploys", "profiles")}
        for v in variants
    }
    timelines = Path(tempfile.mkdtemp(prefix="bdep-timeline-", dir=workspace.root))
    results: dict[str, dict[str, Any]] = {v.name: {"agents": agents} for v in variants}
    hosts = 0
    for attempt in range(runs):
        for index, variant in enumerate(variants):
            own = figures[variant.name]
            keep = last and attempt == runs - 1
            tune = compare and attempt == runs - 1 and index == 0
            directory = timelines / str(index)
            directory.mkdir(exist_ok=True)
            own["lab_up"].append(lab(LAB, "up", "--agents", str(agents)))
            try:
                inventory = inventory_of(LAB)
                hosts = len(hosts_of(inventory))
                agent_hosts = [h for h in hosts_of(inventory) if h.startswith("agent")]
                fresh_timeline = directory / f"fresh-{attempt}.jsonl"
                samples = directory / f"fresh-{attempt}.cpu.jsonl"
                deploy = fresh_deploy(
                    inventory, workspace, variant, controller, fresh_timeline, samples
                )
                own["deploys"].append(deploy)
                own["fresh"].append(deploy["seconds"])
                again_timeline = _timeline(directory, "again", keep)
                close_ssh_masters(inventory)  # a later run, not one riding on the deploy's
                seconds, output = site(
                    inventory,
                    workspace,
                    timeline=again_timeline,
                    tree=variant.tree,
                    extra=variant.extra_vars(),
                )
                own["again"].append(seconds)
                own["changed"].append(changed_total(output))
                if tune:
                    project_run = (seconds, own["changed"][-1])
                    results[variant.name]["tuning"] = tuning.compare(
                        inventory, workspace, project_run=project_run
                    )
            finally:
                lab(LAB, "down")
            own["profiles"].append(cpu_profile(samples, agent_hosts))
            if keep:
                fresh_timeline.rename(directory / "fresh.jsonl")
    for variant in variants:
        own, result = figures[variant.name], results[variant.name]
        deploys = own["deploys"]
        result |= {
            "hosts": hosts,
            "fresh_deploy_s": _summary(own["fresh"]),
            "fresh_deploy_cpu_busy": _summary([d["busy"] for d in deploys], 3),
            "fresh_deploy_machine_cpu_s": _summary([d["machine_cpu_s"] for d in deploys]),
            "fresh_deploy_controller_cpu_s": _summary([d["controller_cpu_s"] for d in deploys]),
            "fresh_deploy_hosts_cpu_s": _summary([d["hosts_cpu_s"] for d in deploys]),
            "second_run_s": _summary(own["again"]),
            "second_run_changed": own["changed"],
            "lab_up_s": _summary(own["lab_up"], 2),
            # The last lab's CPU per task, every task (the profile); not in deploy.json.
            "cpu_by_task": own["profiles"][-1],
        }
        if last:
            directory = timelines / str(variants.index(variant))
            result["top_tasks"] = {
                "fresh": top_tasks(directory / "fresh.jsonl"),
                "second_run": top_tasks(directory / "again.jsonl"),
            }
    return results


def task_profile(by_size: list[dict[str, Any]]) -> dict[str, Any]:
    """Where the CPU seconds of one added agent go, task by task: the difference between the
    largest size's and the smallest's per-task CPU over the agents added, controller and hosts
    apart (tasks of every play summed under their name)."""
    first, largest = by_size[0], by_size[-1]
    added = largest["agents"] - first["agents"]
    small = {row["task"]: row for row in first["cpu_by_task"]}
    zero = {"controller_s": 0.0, "hosts_s": 0.0, "per_agent_host_s": 0.0}
    rows = []
    for row in largest["cpu_by_task"]:
        base = small.get(row["task"], zero)
        controller = (row["controller_s"] - base["controller_s"]) / added
        hosts = (row["hosts_s"] - base["hosts_s"]) / added
        rows.append(
            {
                "task": row["task"],
                "controller_s": round(controller, 2),
                "hosts_s": round(hosts, 2),
                "total_s": round(controller + hosts, 2),
                "agent_host_s": row["per_agent_host_s"],
            }
        )
    rows.sort(key=lambda row: -row["total_s"])
    return {
        "sizes": [first["agents"], largest["agents"]],
        "per_added_agent_controller_s": round(sum(r["controller_s"] for r in rows), 1),
        "per_added_agent_hosts_s": round(sum(r["hosts_s"] for r in rows), 1),
        "tasks": rows,
    }


def profile_tables(profiles: dict[str, Any], count: int = 10) -> list[dict[str, Any]]:
    """The tasks that cost one added agent the most, per variant (the rest: deploy_profile.md)."""
    return [
        {
            "title": (
                f"CPU-s per added agent by task, {name} ({profile['per_added_agent_controller_s']}"
                f" controller + {profile['per_added_agent_hosts_s']} hosts; all tasks in "
                "bench/results/deploy_profile.md)"
            ),
            "columns": ["task", "controller s", "hosts s", "total s"],
            "rows": [
                [row["task"], row["controller_s"], row["hosts_s"], row["total_s"]]
                for row in profile["tasks"][:count]
            ],
        }
        for name, profile in profiles.items()
    ]


def profile_markdown(profiles: dict[str, Any], machine: dict[str, Any] | None = None) -> str:
    """bench/results/deploy_profile.md: per-task CPU of one added agent, variant by variant."""
    names = list(profiles)
    lines = [
        "# Where the CPU-seconds of one added agent go (fresh site.yml)",
        "",
        "Written by bench/deploy.py from deploy_profile.json. Per task (its plays summed), the",
        "CPU seconds between its start and the next task's, controller (ansible-playbook, its",
        "workers and ssh, in a cgroup of their own) and hosts (the lab hosts' cgroups) apart; the",
        "difference between the largest and the smallest lab over the agents added. A host-side",
        "module run (Python started on the host, the module, its result) costs about 0.2 s there",
        "and 0.05 s on the controller; the venv copy and unpack, the agent's own start-up and",
        "check-config's runs come on top. Tasks that run on the controller alone cost it a",
        "worker per host.",
        "",
    ]
    if machine:
        lines += [f"Machine: {machine}", ""]
    for name in names:
        profile = profiles[name]
        first, largest = profile["sizes"]
        total = profile["per_added_agent_controller_s"] + profile["per_added_agent_hosts_s"]
        lines += [
            f"## {name}",
            "",
            f"Per added agent ({first} to {largest} agents): controller "
            f"{profile['per_added_agent_controller_s']} s + hosts "
            f"{profile['per_added_agent_hosts_s']} s = {round(total, 1)} CPU-s.",
            "",
            "| task | controller s | hosts s | total s | one agent host s |",
            "| --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {row['task']} | {row['controller_s']} | {row['hosts_s']} | {row['total_s']} "
            f"| {row['agent_host_s']} |"
            for row in profile["tasks"]
            if abs(row["total_s"]) >= 0.05
        ]
        lines.append("")
    return "\n".join(lines)


def per_added_agent(by_size: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """CPU seconds each agent beyond the smallest size's adds: (cpu(n) - cpu(first)) / (n - first)
    for every larger size."""
    first = by_size[0]
    return {
        str(size["agents"]): round(
            (size[key]["median"] - first[key]["median"]) / (size["agents"] - first["agents"]), 1
        )
        for size in by_size[1:]
    }


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


def scaling(by_size: list[dict[str, Any]]) -> dict[str, Any]:
    first, largest = by_size[0], by_size[-1]
    ratio = largest["fresh_deploy_s"]["median"] / first["fresh_deploy_s"]["median"]
    machine = per_added_agent(by_size, "fresh_deploy_machine_cpu_s")
    own = {
        str(size["agents"]): round(
            (
                size["fresh_deploy_controller_cpu_s"]["median"]
                + size["fresh_deploy_hosts_cpu_s"]["median"]
                - first["fresh_deploy_controller_cpu_s"]["median"]
                - first["fresh_deploy_hosts_cpu_s"]["median"]
            )
            / (size["agents"] - first["agents"]),
            1,
        )
        for size in by_size[1:]
    }
    largest_agents = str(largest["agents"])
    return {
        "smallest_hosts": first["hosts"],
        "largest_hosts": largest["hosts"],
        "ratio": round(ratio, 2),
        "second_run_ratio": round(
            largest["second_run_s"]["median"] / first["second_run_s"]["median"], 2
        ),
        "smallest_cpu_busy": first["fresh_deploy_cpu_busy"]["median"],
        "largest_cpu_busy": largest["fresh_deploy_cpu_busy"]["median"],
        "cpu_s_per_added_agent_machine": machine,
        "cpu_s_per_added_agent_deploy": own,
        "per_added_agent_largest": machine[largest_agents],
        "target": SCALING_TARGET,
        "cpu_target": CPU_TARGET_S,
        "met": ratio <= SCALING_TARGET and machine[largest_agents] <= CPU_TARGET_S,
    }


def side_by_side(
    mine: list[dict[str, Any]], other: list[dict[str, Any]], name: str
) -> dict[str, Any]:
    """One row per size: this tree's figures beside the baseline's, and their ratio."""
    rows = []
    for a, b in zip(mine, other, strict=True):
        row: list[Any] = [a["hosts"]]
        for key in ("fresh_deploy_s", "fresh_deploy_machine_cpu_s"):
            row += [
                b[key]["median"],
                a[key]["median"],
                round(a[key]["median"] / b[key]["median"], 2),
            ]
        deploy_a = (
            a["fresh_deploy_controller_cpu_s"]["median"] + a["fresh_deploy_hosts_cpu_s"]["median"]
        )
        deploy_b = (
            b["fresh_deploy_controller_cpu_s"]["median"] + b["fresh_deploy_hosts_cpu_s"]["median"]
        )
        row += [round(deploy_b, 1), round(deploy_a, 1)]
        row += [b["second_run_s"]["median"], a["second_run_s"]["median"]]
        rows.append(row)
    return {
        "title": f"fresh site.yml deploy, {name} (before) beside this tree (after), interleaved",
        "columns": [
            "hosts",
            "wall s before",
            "wall s after",
            "after/before",
            "machine CPU-s before",
            "machine CPU-s after",
            "after/before",
            "controller+hosts CPU-s before",
            "controller+hosts CPU-s after",
            "second run s before",
            "second run s after",
        ],
        "rows": rows,
    }


def reading(document: dict[str, Any]) -> str:
    """What the figures say, in sentences (docs/performance.md shows it first)."""
    verdict = document.get("scaling")
    if not verdict:
        return ""
    largest = str(document["sizes"][-1]["agents"])
    load = document["machine"]
    parts = [
        f"Each agent beyond the first costs the deploy itself (controller and hosts, from their "
        f"cgroups) {verdict['cpu_s_per_added_agent_deploy'][largest]} CPU-s, and the whole "
        f"machine (/proc/stat, other work on this shared machine included) "
        f"{verdict['cpu_s_per_added_agent_machine'][largest]} CPU-s; target "
        f"{verdict['cpu_target']:g}. {verdict['largest_hosts']} hosts take "
        f"{verdict['ratio']}x the wall time of {verdict['smallest_hosts']} (target "
        f"{verdict['target']:g}x).",
    ]
    before = document.get("baseline", {}).get("scaling")
    if before:
        other = document["baseline"]["sizes"]
        parts.append(
            f"Deployed beside it, lab by lab, {document['baseline']['ref']} costs "
            f"{before['cpu_s_per_added_agent_deploy'][largest]} CPU-s per added agent "
            f"(deploy) and {before['ratio']}x. Each wall ratio divides by one run of the "
            f"smallest lab ({document['sizes'][0]['fresh_deploy_s']['median']} s here, "
            f"{other[0]['fresh_deploy_s']['median']} s for {document['baseline']['ref']}), "
            "so it swings with the load of that moment; the table compares the two at each "
            "size minutes apart."
        )
    parts.append(
        f"Load average {load['load_average_at_start'][0]:.1f} at the start and "
        f"{load['load_average_at_end'][0]:.1f} at the end on {load['cpus']} CPUs: the wall "
        "times and the machine figure carry the other work of the moment, the deploy's own "
        "CPU-seconds do not."
    )
    return " ".join(parts)


def main(
    sizes: tuple[int, ...] = SIZES,
    runs: int = RUNS,
    compare: bool = True,
    tuning_size: int = TUNING_SIZE,
    baseline: str | None = None,
) -> dict[str, Any]:
    if tuning_size not in sizes:
        tuning_size = sizes[-1]
    workspace = Workspace()
    controller = ControllerGroup()
    load_before = list(os.getloadavg())
    try:
        variants = [Variant("this tree", REPO, workspace.cache)]
        if baseline is not None:
            variants.append(baseline_variant(baseline, workspace))
        build_s = workspace.build_wheelhouse()
        for variant in variants[1:]:
            build_wheelhouse(variant, workspace)
        by_variant: dict[str, list[dict[str, Any]]] = {v.name: [] for v in variants}
        for agents in sizes:
            tune = compare and agents == tuning_size
            measured = measure(
                agents, runs, workspace, variants, agents == sizes[-1], tune, controller
            )
            for name, result in measured.items():
                by_variant[name].append(result)
            print(json.dumps(measured), file=sys.stderr, flush=True)  # progress
    finally:
        workspace.remove()
        controller.remove()
    profiles = {
        name: task_profile(sizes_) for name, sizes_ in by_variant.items() if len(sizes_) > 1
    }
    for sizes_ in by_variant.values():
        for size in sizes_:
            size.pop("cpu_by_task")
    if profiles:
        PROFILE.write_text(json.dumps(profiles, indent=2) + "\n")
        PROFILE.with_suffix(".md").write_text(profile_markdown(profiles))
    by_size = by_variant["this tree"]
    comparison = next((size.pop("tuning") for size in by_size if "tuning" in size), None)
    document: dict[str, Any] = {
        "benchmark": "deploy",
        "statistic": (
            (f"median of {runs} fresh labs" if runs > 1 else "one fresh lab (a single run)")
            + " per size, then one idempotent second run on each; wheelhouse built beforehand"
            + (f"; {baseline} deployed beside it, lab by lab, interleaved" if baseline else "")
        ),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": load_before,
            "load_average_at_end": list(os.getloadavg()),
        },
        "wheelhouse_build_s": round(build_s, 1),
        "sizes": by_size,
    }
    if len(by_size) > 1:
        document["scaling"] = scaling(by_size)
        plot(by_size, PLOT)
    if baseline is not None:
        other = by_variant[variants[1].name]
        document["baseline"] = {"ref": baseline, "sizes": other}
        if len(other) > 1:
            document["baseline"]["scaling"] = {
                key: value for key, value in scaling(other).items() if key != "met"
            }
        document["tables"] = [side_by_side(by_size, other, baseline)]
    if profiles:
        document.setdefault("tables", []).extend(profile_tables(profiles))
    document["reading"] = reading(document)
    document["idempotent"] = {
        "changed_on_second_runs": sum(
            sum(s["second_run_changed"]) for sizes_ in by_variant.values() for s in sizes_
        ),
        "met": all(
            c == 0
            for sizes_ in by_variant.values()
            for s in sizes_
            for c in s["second_run_changed"]
        ),
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
    parser.add_argument(
        "--lab", default=LAB, help="lab name (default $MESH_BENCH_DEPLOY_LAB or bdep)"
    )
    parser.add_argument("--baseline", help="git ref deployed beside this tree, interleaved")
    parser.add_argument(
        "--profile-markdown", action="store_true", help="rewrite deploy_profile.md from its JSON"
    )
    options = parser.parse_args()
    if options.profile_markdown:
        PROFILE.with_suffix(".md").write_text(profile_markdown(json.loads(PROFILE.read_text())))
        sys.exit(0)
    LAB = options.lab
    sizes = tuple(int(size) for size in options.sizes.split(","))
    document = main(
        sizes, options.runs, not options.no_tuning, options.tuning_size, options.baseline
    )
    print(json.dumps(document, indent=2))
