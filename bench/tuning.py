"""Benchmark: the idempotent `site.yml` run under three Ansible configurations, side by side.

- `project`: the repository's ansible.cfg (forks 25, pipelining, ControlPersist 120 s).
- `defaults`: Ansible's defaults; the config sets only what the lab needs to run at all
  (inventory, roles_path, no host key checking).
- `mitogen`: the project config with the mitogen_linear strategy, installed for the trial
  only into a temporary directory (it is not a project dependency). When it cannot be
  installed or the run fails, the section says "not supported: <reason>".

Every run starts with the lab's SSH master connections closed, so no configuration inherits
another's connections. Also home of the helpers bench/deploy.py shares: a frozen snapshot of
the runtime source with a private wheelhouse cache (edits to the working tree during a
benchmark must not turn a second run into a reinstall), and the timeline summary.

Writes bench/results/tuning.json. bench/deploy.py runs this comparison on its 6-agent lab
(the fresh deploy it needs is already paid for there); alone it brings up lab `btun`:
`.venv/bin/python -m bench.tuning [--agents 12] [--rounds 1]`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "tuning.json"
BIN = Path(sys.executable).parent
LAB = "btun"
AGENTS = 12
ROUNDS = 1
MITOGEN_REQUIREMENT = "mitogen>=0.3,<0.4"
PLAYBOOK_TIMEOUT_S = 1500
MITOGEN_DECISION = (
    "mitogen is measured, not adopted: it replaces Ansible's connection and module execution "
    "layer, and each of its releases supports a bounded range of ansible-core versions, so an "
    "ansible-core upgrade could break deploys and rollbacks; operators keep stock Ansible"
)
# The defaults run: Ansible's own forks (5), no pipelining, its own ssh_args plus only the
# host-key options a throw-away lab needs (its hosts' keys change with every `lab up`).
MINIMAL_CONFIG = """\
[defaults]
inventory = inventories/lab/hosts.yml
roles_path = {roles}
collections_path = {collections}
host_key_checking = False
retry_files_enabled = False

[ssh_connection]
ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s \
-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR
"""


class PlaybookFailed(RuntimeError):
    pass


class Workspace:
    """Temporary files of one benchmark: the source snapshot, the wheelhouse cache, configs."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mesh-bench-"))
        self.source = self.root / "source"
        self.cache = self.root / "wheelhouse"
        self._snapshot_source()
        self._seed_cache()

    def _snapshot_source(self) -> None:
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "*.pyc")
        self.source.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(REPO / name, self.source / name)
        shutil.copytree(REPO / "runtime", self.source / "runtime", ignore=ignore)

    def _seed_cache(self) -> None:
        """Dependency wheels of the project's cache, so the build only builds the runtime."""
        self.cache.mkdir()
        earlier = sorted((REPO / ".cache" / "wheelhouse").glob("*/wheels"))
        if earlier:
            shutil.copytree(earlier[-1], self.cache / "seed" / "wheels")

    @property
    def extra_vars(self) -> list[str]:
        return [
            "-e",
            f"mesh_common_source_dir={self.source}",
            "-e",
            f"mesh_common_wheelhouse_cache_dir={self.cache}",
        ]

    def build_wheelhouse(self) -> float:
        """Build the snapshot's wheelhouse now, so no timed run pays for it."""
        arguments = {"source_dir": str(self.source), "cache_dir": str(self.cache)}
        arguments["python"] = sys.executable
        command = [str(BIN / "ansible"), "localhost", "-c", "local", "-i", "localhost,"]
        command += ["-e", f"ansible_python_interpreter={sys.executable}"]
        command += ["-m", "mcp_mesh.ops.mesh_wheelhouse", "-a", json.dumps(arguments)]
        return run(command, {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg")})[0]

    def minimal_config(self) -> Path:
        path = self.root / "ansible-defaults.cfg"
        path.write_text(
            MINIMAL_CONFIG.format(roles=REPO / "roles", collections=REPO / "collections")
        )
        return path

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def run(
    command: list[str],
    env: dict[str, str],
    timeout: float = PLAYBOOK_TIMEOUT_S,
    cwd: Path = REPO,
    preexec: Callable[[], None] | None = None,
) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=preexec,
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise PlaybookFailed(
            f"{' '.join(command[:3])} failed (exit {done.returncode}):\n"
            f"{done.stdout[-3000:]}{done.stderr[-2000:]}"
        )
    return elapsed, done.stdout


def lab(name: str, *args: str) -> float:
    return run([sys.executable, "-m", "lab", *args, "--name", name], {})[0]


def inventory_of(name: str) -> Path:
    return REPO / "inventories" / "lab" / f"{name}.yml"


def hosts_of(inventory: Path) -> dict[str, dict[str, Any]]:
    return yaml.safe_load(inventory.read_text())["all"]["hosts"]


def close_ssh_masters(inventory: Path) -> None:
    """End the lab's shared SSH connections, so the next run opens its own."""
    for variables in hosts_of(inventory).values():
        destination = f"{variables['ansible_user']}@{variables['ansible_host']}"
        subprocess.run(
            ["ssh", *variables["ansible_ssh_common_args"].split(), "-O", "exit", destination],
            capture_output=True,
            timeout=30,
            check=False,
        )


def site(
    inventory: Path,
    workspace: Workspace,
    config: Path | None = None,
    timeline: Path | None = None,
    env: dict[str, str] | None = None,
    tree: Path = REPO,
    preexec: Callable[[], None] | None = None,
    extra: list[str] | None = None,
) -> tuple[float, str]:
    """Time one `site.yml` run; the timeline callback writes per-task times to `timeline`.

    `tree`: the checkout whose playbooks, roles and ansible.cfg run (another commit's, for a
    side-by-side comparison, with `extra` arguments such as its own wheelhouse cache);
    `preexec` runs in the child before ansible-playbook starts.
    """
    environment = {"ANSIBLE_CONFIG": str(config or tree / "ansible.cfg"), **(env or {})}
    if timeline is not None:
        environment |= {
            "ANSIBLE_CALLBACK_PLUGINS": str(REPO / "bench" / "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "mesh_timeline",
            "MESH_TIMELINE_FILE": str(timeline),
        }
    command = [str(BIN / "ansible-playbook"), "-i", str(inventory), "playbooks/site.yml"]
    command += workspace.extra_vars + (extra or [])
    return run(command, environment, cwd=tree, preexec=preexec)


def changed_total(output: str) -> int:
    """Sum of changed=N over the play recap."""
    return sum(int(n) for n in re.findall(r"\bchanged=(\d+)", output.split("PLAY RECAP")[-1]))


def top_tasks(timeline: Path, count: int = 8) -> list[dict[str, Any]]:
    """The tasks that took the most wall-clock time, summed over the plays that run them.

    A task's wall time runs from its first host starting it to the next task's first start
    (so the controller's work between tasks is counted too); `host_seconds` adds up the
    time each host spent in it.
    """
    rows = sorted(
        (json.loads(line) for line in timeline.read_text().splitlines() if line.strip()),
        key=lambda row: row["start"],
    )
    occurrences: list[dict[str, Any]] = []
    for row in rows:
        if occurrences and occurrences[-1]["task"] == row["task"]:
            occurrences[-1]["end"] = max(occurrences[-1]["end"], row["end"])
            occurrences[-1]["host_seconds"] += row["end"] - row["start"]
        else:
            occurrences.append({**row, "host_seconds": row["end"] - row["start"]})
    for current, following in itertools.pairwise(occurrences):
        current["end"] = following["start"]
    totals: dict[str, dict[str, float]] = defaultdict(lambda: {"wall_s": 0.0, "host_seconds": 0.0})
    for occurrence in occurrences:
        totals[occurrence["task"]]["wall_s"] += occurrence["end"] - occurrence["start"]
        totals[occurrence["task"]]["host_seconds"] += occurrence["host_seconds"]
    ranked = sorted(totals.items(), key=lambda item: -item[1]["wall_s"])[:count]
    return [
        {"task": task, "wall_s": round(t["wall_s"], 1), "host_seconds": round(t["host_seconds"], 1)}
        for task, t in ranked
    ]


def install_mitogen(workspace: Workspace) -> Path:
    """pip-install mitogen into the workspace (not the venv); its strategy plugin directory."""
    target = workspace.root / "mitogen"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    command += ["--disable-pip-version-check", "--target", str(target), MITOGEN_REQUIREMENT]
    run(command, {}, timeout=300)
    return target / "ansible_mitogen" / "plugins" / "strategy"


def mitogen_version(strategy_dir: Path) -> str:
    found = sorted(strategy_dir.parents[2].glob("mitogen-*.dist-info"))
    return found[0].name.removeprefix("mitogen-").removesuffix(".dist-info") if found else "?"


def failure_reason(error: Exception) -> str:
    """The last meaningful lines of a failed run, for the 'not supported' verdict."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    interesting = [line for line in lines if re.search(r"ERROR|fatal|Error|FAILED", line)]
    return " | ".join((interesting or lines)[-3:])[:600]


def compare(
    inventory: Path,
    workspace: Workspace,
    rounds: int = ROUNDS,
    project_run: tuple[float, int] | None = None,
) -> dict[str, Any]:
    """Idempotent runs of each configuration, interleaved round by round on one deployed lab.

    `project_run` (seconds, changed): the project configuration's run of the first round,
    when the caller has just timed it the same way (SSH masters closed first); bench/deploy.py
    passes its second run on the same lab, which saves `make bench` one run.
    """
    configs: dict[str, tuple[Path | None, dict[str, str]]] = {
        "project": (None, {}),
        "defaults": (workspace.minimal_config(), {}),
    }
    mitogen: dict[str, Any] = {"requirement": MITOGEN_REQUIREMENT}
    try:
        strategy_dir = install_mitogen(workspace)
        mitogen["version"] = mitogen_version(strategy_dir)
        configs["mitogen"] = (
            None,
            {"ANSIBLE_STRATEGY_PLUGINS": str(strategy_dir), "ANSIBLE_STRATEGY": "mitogen_linear"},
        )
    except (PlaybookFailed, subprocess.TimeoutExpired) as exc:
        mitogen["status"] = f"not supported: cannot install: {failure_reason(exc)}"
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    changed: dict[str, list[int]] = {name: [] for name in configs}
    if project_run is not None:
        seconds["project"].append(round(project_run[0], 1))
        changed["project"].append(project_run[1])
    for round_index in range(rounds):
        for name, (config, env) in list(configs.items()):
            if name == "project" and round_index == 0 and project_run is not None:
                continue
            close_ssh_masters(inventory)
            try:
                elapsed, output = site(inventory, workspace, config, env=env)
            except (PlaybookFailed, subprocess.TimeoutExpired) as exc:
                if name != "mitogen":
                    raise
                mitogen["status"] = f"not supported: {failure_reason(exc)}"
                del configs[name], seconds[name], changed[name]
                continue
            seconds[name].append(round(elapsed, 1))
            changed[name].append(changed_total(output))
    close_ssh_masters(inventory)
    medians = {name: round(statistics.median(runs), 1) for name, runs in seconds.items()}
    document: dict[str, Any] = {
        "hosts": len(hosts_of(inventory)),
        "rounds": rounds,
        "second_run_s": {
            name: {"median": medians[name], "runs": runs} for name, runs in seconds.items()
        },
        "changed": changed,
        "defaults_over_project": round(medians["defaults"] / medians["project"], 2),
        "project_from_deploy": project_run is not None,
    }
    if "mitogen" in medians:
        mitogen["status"] = "works" if all(c == 0 for c in changed["mitogen"]) else "changed hosts"
        mitogen["mitogen_over_project"] = round(medians["mitogen"] / medians["project"], 2)
    document["mitogen"] = mitogen
    return document


def write(document: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")


def configurations_table(comparison: dict[str, Any]) -> dict[str, Any]:
    """One row per configuration: its time, its ratio to the project's, whether adopted."""
    medians = {name: figures["median"] for name, figures in comparison["second_run_s"].items()}
    mitogen_status = comparison.get("mitogen", {}).get("status", "not tried")
    rows: list[list[Any]] = [
        [
            name,
            seconds,
            round(seconds / medians["project"], 2),
            sum(comparison["changed"][name]),
            "yes" if name == "project" else "no",
        ]
        for name, seconds in medians.items()
    ]
    if "mitogen" not in medians:
        rows.append(["mitogen", "-", "-", "-", f"no ({mitogen_status})"])
    return {
        "title": f"idempotent site.yml on {comparison['hosts']} hosts",
        "columns": ["configuration", "seconds", "vs project", "changed", "adopted"],
        "rows": rows,
    }


def describe(comparison: dict[str, Any], lab_name: str) -> dict[str, Any]:
    return {
        "benchmark": "tuning",
        "statistic": (
            f"median of {comparison['rounds']} idempotent site.yml run(s) per configuration, "
            f"interleaved, on one deployed {comparison['hosts']}-host lab ({lab_name}); "
            "SSH masters closed before every run"
            + (
                "; the project configuration's first run is the idempotent second run of "
                "bench/deploy.py on this lab, timed just before the others the same way"
                if comparison.get("project_from_deploy")
                else ""
            )
        ),
        "decision": MITOGEN_DECISION,
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": list(os.getloadavg())},
        **comparison,
        "tables": [configurations_table(comparison)],
    }


def main(agents: int = AGENTS, rounds: int = ROUNDS) -> dict[str, Any]:
    workspace = Workspace()
    try:
        workspace.build_wheelhouse()
        lab(LAB, "up", "--agents", str(agents))
        try:
            site(inventory_of(LAB), workspace)
            comparison = compare(inventory_of(LAB), workspace, rounds)
        finally:
            lab(LAB, "down")
    finally:
        workspace.remove()
    document = describe(comparison, LAB)
    write(document)
    return document


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.tuning")
    parser.add_argument("--agents", type=int, default=AGENTS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    options = parser.parse_args()
    print(json.dumps(main(options.agents, options.rounds), indent=2))
