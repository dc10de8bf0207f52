"""Benchmark: `backup create` and `backup restore --mode data` on a lab host, beside `tar -x`.

Brings up its own lab (`brst`, one agent) and deploys it with `site.yml`, unless
MESH_LAB_NAME names a lab with the fleet already deployed (`make demo`: "mesh"); the host is
MESH_BENCH_HOST (default agent1). For each size in SIZES, fills a directory of the host's data
with that much data (half text, half random bytes, 64 files), then three times: stops the
agent, times `backup create --json`, `backup restore --mode data --json` of that backup and,
as the baseline, what an operator does by hand with the same archive: `age -d` (the runtime's
own pyrage: the hosts have no age binary) piped into `tar -xz` into an empty directory, all on
the host itself (no SSH in the timing); starts the agent. Reports medians in seconds and MB/s, and
restore's throughput as a ratio of tar's. Writes bench/results/restore.json.
Run alone: `.venv/bin/python -m bench.restore` (MESH_BENCH_SIZES_MB=100,1024 to choose sizes).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from lab.state import inventory_path
from mcp_mesh_sdk.constants import AGENT_UNIT, BACKUP_IDENTITY_NAME, CLI, CONFIG_DIR, STATE_DIR
from mcp_mesh_sdk.constants import BACKUP_DIR as BACKUP_DIR_DEFAULT

RUNS = 3
SIZES_MB = [int(s) for s in os.environ.get("MESH_BENCH_SIZES_MB", "100,1024").split(",")]
HOST = os.environ.get("MESH_BENCH_HOST", "agent1")
OWN_LAB = "brst"
LAB = os.environ.get("MESH_LAB_NAME", OWN_LAB)
RESULTS = Path(__file__).parent / "results" / "restore.json"
SDK = str(CLI)
BENCH_DIR = f"{STATE_DIR}/data/bench-restore"
BACKUP_DIR = f"{BACKUP_DIR_DEFAULT}-bench"
TAR_DIR = f"{STATE_DIR}/bench-tar-x"
IDENTITY = f"{CONFIG_DIR}/{BACKUP_IDENTITY_NAME}"
PYTHON = str(CLI.parent / "python")  # the runtime's interpreter, which has pyrage
# `age -d -i KEY ARCHIVE` to standard output, by pyrage (written to the host for the baseline).
AGE_D = "/run/mcp-mesh-bench-age-d.py"
AGE_D_SOURCE = """import sys, pyrage
key = next(w for w in open(sys.argv[1]).read().split() if w.startswith("AGE-SECRET-KEY-"))
with open(sys.argv[2], "rb") as source:
    pyrage.decrypt_io(source, sys.stdout.buffer, [pyrage.x25519.Identity.from_str(key)])
"""
# What `backup restore` keeps of the replaced data (removed after each run: 1 GB each).
ROLLBACKS = f"{STATE_DIR}/data.pre-restore-* {STATE_DIR}.pre-restore-*"

# Runs on the host: times one command, prints {"seconds": ..., "output": <its JSON>}.
TIMER = (
    "import json, subprocess, sys, time; s = time.monotonic(); "
    "p = subprocess.run(sys.argv[1:], capture_output=True, text=True, check=True); "
    "print(json.dumps({'seconds': time.monotonic() - s, "
    "'output': json.loads(p.stdout) if p.stdout.strip() else None}))"
)


def ssh_command(address: str, key: str) -> list[str]:
    options = ["BatchMode=yes", "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"]
    return ["ssh", "-i", key, *(f"-o{option}" for option in options), f"root@{address}"]


def main(lab_name: str | None = None) -> dict[str, Any]:
    """Measure on `lab_name` (a deployed lab: `make bench` passes the one bench/upgrade.py
    leaves up) or LAB; a lab of our own is brought up, deployed and taken down around it."""
    if lab_name is not None or LAB != OWN_LAB:
        return measure(lab_name or LAB)
    from bench.tuning import Workspace, inventory_of, lab, site

    workspace = Workspace()
    try:
        lab(OWN_LAB, "up", "--agents", "1")
        site(inventory_of(OWN_LAB), workspace)
        return measure(OWN_LAB)
    finally:
        try:
            lab(OWN_LAB, "down")
        finally:
            workspace.remove()


def measure(lab_name: str) -> dict[str, Any]:
    inventory = yaml.safe_load(inventory_path(lab_name).read_text())["all"]["hosts"]
    if HOST not in inventory:
        sys.exit(f"lab {lab_name!r} has no host {HOST!r}: bring it up and deploy the fleet first")
    ssh = ssh_command(
        inventory[HOST]["lab_address"], inventory[HOST]["ansible_ssh_private_key_file"]
    )

    def on_host(command: str) -> str:
        return subprocess.run([*ssh, command], capture_output=True, text=True, check=True).stdout

    def timed(*argv: str) -> dict[str, Any]:
        quoted = " ".join(f"'{a}'" for a in argv)
        return json.loads(on_host(f'python3 -c "{TIMER}" {quoted}'))

    rows: dict[str, Any] = {}
    for size_mb in SIZES_MB:
        half = size_mb // 2
        on_host(
            f"rm -rf {BENCH_DIR} {BACKUP_DIR} && mkdir -p {BENCH_DIR} {BACKUP_DIR}"
            f" && cd {BENCH_DIR}"
            f" && for i in $(seq 1 32); do head -c {half * 32}K /dev/urandom > bin$i.dat;"
            f" yes 'text line of an agent data file 0123456789' | head -c {half * 32}K > t$i.txt;"
            f" done && chown -R mcp-mesh:mcp-mesh {BENCH_DIR} && sync"
        )
        creates, restores, untars = [], [], []
        on_host(f"cat > {AGE_D} <<'EOF'\n{AGE_D_SOURCE}EOF")
        on_host(f"systemctl stop {AGENT_UNIT}")
        try:
            for _ in range(RUNS):
                on_host(f"rm -f {BACKUP_DIR}/*")
                made = timed(SDK, "backup", "create", "--json", "--output-dir", BACKUP_DIR)
                creates.append(made["seconds"])
                back = timed(SDK, "backup", "restore", "--mode", "data", "--json",
                             "--output-dir", BACKUP_DIR, made["output"]["path"])  # fmt: skip
                restores.append(back["seconds"])
                on_host(f"rm -rf {ROLLBACKS} {TAR_DIR} && mkdir {TAR_DIR}")
                by_hand = (
                    f"{PYTHON} {AGE_D} {IDENTITY} {made['output']['path']} | tar -xz -C {TAR_DIR}"
                )
                untar = timed("sh", "-c", by_hand)
                untars.append(untar["seconds"])
                on_host(f"rm -rf {TAR_DIR}")
        finally:
            on_host(f"systemctl start {AGENT_UNIT}")
            on_host(f"rm -rf {BENCH_DIR} {BACKUP_DIR} {TAR_DIR} {AGE_D}")
        size_bytes = size_mb << 20
        rows[f"{size_mb}MB"] = {
            "bytes": size_bytes,
            "create_seconds_median": round(statistics.median(creates), 3),
            "restore_seconds_median": round(statistics.median(restores), 3),
            "create_mb_per_s": round(size_mb / statistics.median(creates), 1),
            "restore_mb_per_s": round(size_mb / statistics.median(restores), 1),
            "baseline_tar_x_seconds_median": round(statistics.median(untars), 3),
            "restore_throughput_vs_tar_x": round(
                statistics.median(untars) / statistics.median(restores), 2
            ),
            "tar_x_seconds": [round(s, 3) for s in untars],
            "create_seconds": [round(s, 3) for s in creates],
            "restore_seconds": [round(s, 3) for s in restores],
        }
    result = {"benchmark": "restore", "runs": RUNS, "host": HOST, "lab": lab_name,
              "statistic": f"median of {RUNS} runs per size on the lab host; the baseline is "
              "the same archive decrypted (age -d, by pyrage) into tar -xz, into an empty "
              "directory",
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "sizes": rows}  # fmt: skip
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
