"""Benchmark: a fresh `site.yml` deploy of a new lab, and the idempotent second run.

For each size (agent hosts), RUNS times: bring up a fresh lab (its own name, so nothing else
is touched), time `ansible-playbook playbooks/site.yml` from bare hosts to a verified mesh,
then time a second run and check it changed nothing; take the lab down. The runtime's
wheelhouse is built once beforehand (it is cached on the controller by version), so the
figures are the deploy itself. Medians per size; the ratio of the largest size to the
smallest is the scaling figure (target from issue #9: 12 hosts at most 2x one host).

Writes bench/results/deploy.json. Run alone: `.venv/bin/python -m bench.deploy [--sizes 1,3]`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "deploy.json"
LAB = "bdep"
INVENTORY = REPO / "inventories" / "lab" / f"{LAB}.yml"
RUNS = 3
SCALING_TARGET = 2.0
BIN = Path(sys.executable).parent


def _run(args: list[str], timeout: float = 1200) -> tuple[float, str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    started = time.monotonic()
    done = subprocess.run(
        args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args[:3])} failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
        )
    return elapsed, done.stdout


def _lab(*args: str) -> float:
    return _run([sys.executable, "-m", "lab", *args, "--name", LAB])[0]


def _site() -> tuple[float, str]:
    return _run([str(BIN / "ansible-playbook"), "-i", str(INVENTORY), "playbooks/site.yml"])


def changed_total(output: str) -> int:
    """Sum of changed=N over the play recap."""
    return sum(int(n) for n in re.findall(r"\bchanged=(\d+)", output.split("PLAY RECAP")[-1]))


def measure(agents: int, runs: int) -> dict[str, Any]:
    fresh, again, lab_up, changed_again = [], [], [], []
    for _ in range(runs):
        lab_up.append(_lab("up", "--agents", str(agents)))
        try:
            fresh.append(_site()[0])
            seconds, output = _site()
            again.append(seconds)
            changed_again.append(changed_total(output))
        finally:
            _lab("down")
    return {
        "agents": agents,
        "hosts": agents + 1,
        "fresh_deploy_s": {"median": round(statistics.median(fresh), 1), "runs": fresh},
        "second_run_s": {"median": round(statistics.median(again), 1), "runs": again},
        "second_run_changed": changed_again,
        "lab_up_s": {"median": round(statistics.median(lab_up), 2), "runs": lab_up},
    }


def main(sizes: tuple[int, ...] = (3,), runs: int = RUNS) -> dict[str, Any]:
    _lab("up", "--agents", "1")  # warm the wheelhouse cache so runs time the deploy alone
    try:
        _site()
    finally:
        _lab("down")
    by_size = [measure(agents, runs) for agents in sizes]
    document: dict[str, Any] = {
        "benchmark": "deploy",
        "statistic": f"median of {runs} fresh labs per size; wheelhouse cached",
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": list(os.getloadavg())},
        "sizes": by_size,
    }
    if len(by_size) > 1:
        ratio = by_size[-1]["fresh_deploy_s"]["median"] / by_size[0]["fresh_deploy_s"]["median"]
        document["scaling"] = {
            "smallest_agents": by_size[0]["agents"],
            "largest_agents": by_size[-1]["agents"],
            "ratio": round(ratio, 2),
            "target": SCALING_TARGET,
            "met": ratio <= SCALING_TARGET,
        }
    document["idempotent"] = {
        "changed_on_second_runs": sum(sum(s["second_run_changed"]) for s in by_size),
        "met": all(c == 0 for s in by_size for c in s["second_run_changed"]),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    return document


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.deploy")
    parser.add_argument("--sizes", default="3", help="agent host counts, e.g. 1,3,6,12")
    parser.add_argument("--runs", type=int, default=RUNS)
    options = parser.parse_args()
    sizes = tuple(int(size) for size in options.sizes.split(","))
    print(json.dumps(main(sizes, options.runs), indent=2))
