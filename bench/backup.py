"""Benchmark: `backup create`, `verify` and `restore` against `tar -c DIR | sha256sum`.

Generates about 1 GB once in a temporary directory (many small text files, a few large text
and binary files: what an agent's data directory holds), warms the page cache, then runs
every contender five times in interleaved rounds (A B C ... A B C ...; restores in the first
three rounds only, for the time bound of `make bench`) and reports medians:
throughput (source bytes per second of wall time), CPU seconds, and each figure as a ratio of
the baseline measured in the same rounds. The load average is recorded at every round.
Contenders: the runtime as it is (gzip by ISA-L, python-isal) and the same runtime in a process
where `import isal` fails, which deflates and inflates with zlib as the previous release did
(which stored incompressible chunks through zlib's level 0 too): that pair shows what ISA-L
changes, side by side. `restore --mode data` restores the data
directory from the archive just made (the rollback copy it keeps is removed, and the page cache
written back, outside the timing).
Targets: create >= 1.2 x the baseline's throughput; verify and restore no slower than with
zlib (the previous release's path).
Writes bench/results/backup.json.
Run alone: `.venv/bin/python -m bench.backup` (MESH_BENCH_BACKUP_CONTEXT=1 adds, as context,
the other compression levels and `tar -c | gzip -1 | sha256sum`; MESH_BENCH_BACKUP_RUNS=N
changes the number of rounds).
"""

from __future__ import annotations

import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyrage

RUNS = int(os.environ.get("MESH_BENCH_BACKUP_RUNS", "5"))
# Restores (1 GB written each, the slowest step) run in the first rounds only: `make bench`
# has a time bound, and the target on restore is a comparison with zlib, not the baseline.
RESTORE_RUNS = min(RUNS, 2)
# The default (gzip 1, adaptive), gzip 1 for every chunk, and stored (no deflate). `make bench`
# runs the default only (the target is on it, and the suite has a time bound);
# MESH_BENCH_BACKUP_CONTEXT=1 adds the other levels and a `tar | gzip -1` pipeline as context.
ALL_VARIANTS: dict[str, list[str]] = {
    "default": [],
    "level_1": ["--level", "1"],
    "level_0": ["--level", "0"],
}


def with_context() -> bool:
    return os.environ.get("MESH_BENCH_BACKUP_CONTEXT", "") not in ("", "0")


CREATE_TARGET = 1.2  # x the baseline's throughput (issue 22)
SAME_AS_BEFORE = 1.0  # verify and restore: x the zlib path's throughput, at least
# The runtime in a process where isal cannot be imported: zlib, as the previous release.
WITHOUT_ISAL = (
    "import sys; sys.modules['isal'] = None; "
    "from mcp_mesh_sdk.cli import main; sys.exit(main(sys.argv[1:]))"
)
STEPS = ("create", "verify", "restore")
ENGINES: dict[str, list[str]] = {
    "default": [sys.executable, "-m", "mcp_mesh_sdk"],
    "zlib": [sys.executable, "-c", WITHOUT_ISAL],
}
SMALL_FILES = 20_000
SMALL_TOTAL = 200 << 20
LARGE_TEXT = 2
LARGE_BINARY = 2
LARGE_SIZE = 200 << 20
RESULTS = Path(__file__).parent / "results" / "backup.json"
WORDS = [
    "agent",
    "registry",
    "mesh",
    "heartbeat",
    "status",
    "healthy",
    "stale",
    "request",
    "operation",
    "file",
    "read",
    "write",
    "directory",
    "error",
    "timeout",
    "retry",
    "backoff",
    "incident",
    "severity",
    "metric",
    "latency",
    "json",
    "yaml",
    "value",
]


def _text_block(rng: random.Random, size: int) -> bytes:
    lines = []
    total = 0
    while total < size:
        line = f'{{"seq": {rng.randrange(10**9)}, "msg": "{" ".join(rng.choices(WORDS, k=12))}"}}\n'
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def generate(root: Path) -> int:
    """Write the data set; return its size in bytes."""
    rng = random.Random(42)
    block = _text_block(rng, 8 << 20)
    total = 0
    per_dir = 500
    for n in range(SMALL_FILES):
        directory = root / "docs" / f"d{n // per_dir:03d}"
        directory.mkdir(parents=True, exist_ok=True)
        size = rng.randrange(1024, 2 * SMALL_TOTAL // SMALL_FILES)
        start = rng.randrange(0, len(block) - size)
        (directory / f"f{n:05d}.json").write_bytes(block[start : start + size])
        total += size
    for n in range(LARGE_TEXT):
        with (root / f"log{n}.txt").open("wb") as out:
            written = 0
            while written < LARGE_SIZE:
                piece = _text_block(rng, 4 << 20)
                out.write(piece)
                written += len(piece)
        total += written
    for n in range(LARGE_BINARY):
        with (root / f"blob{n}.bin").open("wb") as out:
            for _ in range(LARGE_SIZE // (8 << 20)):
                out.write(os.urandom(8 << 20))
        total += LARGE_SIZE
    return total


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


CPU: dict[str, list[float]] = {}


def _time(command: list[str] | str, shell: bool = False, label: str = "") -> tuple[float, str]:
    """Wall time and output of one run; its CPU time (all its processes) goes to CPU[label]."""
    cpu_before = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(command, shell=shell, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if label:
        CPU.setdefault(label, []).append(_children_cpu() - cpu_before)
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed, done.stdout


def _cli(*args: str, engine: str = "default") -> list[str]:
    return [*ENGINES[engine], *args]


def _median_throughput(times: list[float], size: int) -> dict[str, Any]:
    median = statistics.median(times)
    return {
        "seconds": [round(t, 3) for t in times],
        "median_seconds": round(median, 3),
        "mb_per_s": round(size / median / 1e6, 1),
    }


def _machine_load() -> dict[str, Any]:
    """How busy the machine was: other work on it slows every contender."""
    load: dict[str, Any] = {"load_average": [round(v, 2) for v in os.getloadavg()]}
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0].split()
        load["cpu_pressure_some_avg60"] = float(some[2].split("=")[1])
    except (OSError, IndexError, ValueError):
        pass
    return load


def _settle(base: Path) -> None:
    """After a restore: drop the rollback copy it kept, write the page cache back (untimed)."""
    for leftover in [*base.glob("data.pre-restore-*"), *base.glob(".data.restore-*")]:
        shutil.rmtree(leftover, ignore_errors=True)
    os.sync()


def main() -> dict[str, Any]:
    variants = ALL_VARIANTS if with_context() else {"default": ALL_VARIANTS["default"]}
    load_before = _machine_load()
    round_loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="mcp-mesh-bench-") as scratch:
        base = Path(scratch)
        data, state, out = base / "data", base / "state", base / "backups"
        for directory in (data, state, base / "etc"):
            directory.mkdir()
        identity = base / "etc" / "backup.key"  # backups are encrypted to it, as on a host
        identity.touch(mode=0o600)
        identity.write_text(f"{pyrage.x25519.Identity.generate()}\n")
        size = generate(data)
        paths = ["--config-dir", str(base / "etc"), "--state-dir", str(state),
                 "--data-dir", str(data), "--output-dir", str(out),
                 "--env-file", "/dev/null"]  # fmt: skip
        os.sync()
        # Warm the page cache (GNU tar skips reading files when it writes to /dev/null itself).
        _time(f"tar -c -C {data} . | cat > /dev/null", shell=True)

        # Interleaved rounds: a load spike from elsewhere hits every contender alike.
        times: dict[str, list[float]] = {"baseline_tar_sha256sum": []}
        archives: dict[str, dict[str, Any]] = {}
        if with_context():  # once (it is slow): what a shell script does for a compressed archive
            times["context_tar_gzip1"] = [
                _time(f"tar -c -C {data} . | gzip -1 | sha256sum", True, "context_tar_gzip1")[0]
            ]
        # (name, runtime, create options): every variant with isal, then the default on zlib
        contenders = [(variant, "default", options) for variant, options in variants.items()]
        contenders.append(("zlib", "zlib", []))
        for round_number in range(RUNS):
            round_loads.append(round(os.getloadavg()[0], 2))
            times["baseline_tar_sha256sum"].append(
                _time(f"tar -c -C {data} . | sha256sum", True, "baseline_tar_sha256sum")[0]
            )
            for variant, engine, options in contenders:
                shutil.rmtree(out, ignore_errors=True)
                create = _cli("backup", "create", "--json", *options, *paths, engine=engine)
                elapsed, stdout = _time(create, label=f"create_{variant}")
                times.setdefault(f"create_{variant}", []).append(elapsed)
                archives[f"create_{variant}"] = made = json.loads(stdout)
                verify = _cli("backup", "verify", made["path"], "--json", *paths, engine=engine)
                times.setdefault(f"verify_{variant}", []).append(
                    _time(verify, label=f"verify_{variant}")[0]
                )
                if variant in ("default", "zlib") and round_number < RESTORE_RUNS:
                    restore = _cli("backup", "restore", "--mode", "data", "--json", *paths,
                                   made["path"], engine=engine)  # fmt: skip
                    times.setdefault(f"restore_{variant}", []).append(
                        _time(restore, label=f"restore_{variant}")[0]
                    )
                    _settle(base)
        results = {name: _median_throughput(spent, size) for name, spent in times.items()}
        for name, spent in CPU.items():
            results[name]["median_cpu_seconds"] = round(statistics.median(spent), 2)
        for name, made in archives.items():
            results[name]["archive_bytes"] = made["size"]
            results[name]["compression_ratio"] = round(made["size"] / size, 3)
            results[name]["engine"] = made["compression"]["engine"]
            results[name]["chunks_stored_to_keep_pace"] = made["compression"]["stored_to_keep_pace"]
    base_rate = results["baseline_tar_sha256sum"]["mb_per_s"]
    base_cpu = results["baseline_tar_sha256sum"]["median_cpu_seconds"]
    for key, value in results.items():
        if key != "baseline_tar_sha256sum":
            value["ratio_to_baseline"] = round(value["mb_per_s"] / base_rate, 2)
            value["cpu_ratio_to_baseline"] = round(value["median_cpu_seconds"] / base_cpu, 2)
    for step in STEPS:
        new, old = results[f"{step}_default"], results[f"{step}_zlib"]
        new["speed_vs_zlib"] = round(old["median_seconds"] / new["median_seconds"], 2)
        new["target_met"] = (
            new["ratio_to_baseline"] >= CREATE_TARGET
            if step == "create"
            else new["speed_vs_zlib"] >= SAME_AS_BEFORE
        )
    document = {
        "benchmark": "backup",
        "data_bytes": size,
        "data_set": f"{SMALL_FILES} small JSON files (~{SMALL_TOTAL >> 20} MB), "
        f"{LARGE_TEXT} x {LARGE_SIZE >> 20} MB text logs, "
        f"{LARGE_BINARY} x {LARGE_SIZE >> 20} MB random binary",
        "runs": RUNS,
        "statistic": f"median wall time of {RUNS} interleaved rounds ({RESTORE_RUNS} for "
        "restore) after a warm-up read (the "
        "kernel may still reclaim cache between runs); MB/s = source bytes / time; "
        "median_cpu_seconds = user+sys of all the run's processes (less sensitive to load); "
        "*_zlib: the same runtime with isal unimportable: zlib deflates and inflates, as in the "
        "previous release (which also stored incompressible chunks through zlib's level 0)",
        "target": f"create >= {CREATE_TARGET} x baseline throughput; verify and restore "
        f">= {SAME_AS_BEFORE} x the zlib path's (default settings)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_before": load_before,
        "load_during": {
            "load_average_1min_per_round": round_loads,
            "median_1min": round(statistics.median(round_loads), 2),
            "max_1min": max(round_loads),
        },
        "load_after": _machine_load(),
        "results": results,
        "default": "gzip level 1 by ISA-L (python-isal), adaptive: chunks the compressors "
        "cannot keep up with are stored",
        "target_met": all(results[f"{step}_default"]["target_met"] for step in STEPS),
    }
    describe(document)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    return document


def describe(document: dict[str, Any]) -> None:
    """Add the side-by-side table and the reading (sentences from the figures alone)."""
    results = document["results"]
    base = results["baseline_tar_sha256sum"]
    rows = [["tar -c \\| sha256sum", base["median_seconds"], "", "", 1.0, "",
             base["median_cpu_seconds"], ""]]  # fmt: skip
    for step in STEPS:
        new, old = results[f"{step}_default"], results[f"{step}_zlib"]
        rows.append([step, new["median_seconds"], old["median_seconds"], new["speed_vs_zlib"],
                     new["ratio_to_baseline"], old["ratio_to_baseline"],
                     new["median_cpu_seconds"], old["median_cpu_seconds"]])  # fmt: skip
    document["tables"] = [{
        "title": "ISA-L beside zlib (isal unimportable), in the same rounds",
        "columns": ["step", "isal s", "zlib s", "isal speed / zlib", "isal vs baseline",
                    "zlib vs baseline", "isal CPU-s", "zlib CPU-s"],
        "rows": rows,
    }]  # fmt: skip
    create = results["create_default"]
    cpus = document["machine"]["cpus"]
    # CPUs busy all the time for create to take 1/target of the baseline's wall time
    needed = create["median_cpu_seconds"] * CREATE_TARGET / base["median_seconds"]
    document["reading"] = (
        f"create reaches {create['ratio_to_baseline']} x the baseline's throughput (target "
        f"{CREATE_TARGET}); ISA-L makes create {create['speed_vs_zlib']} x, verify "
        f"{results['verify_default']['speed_vs_zlib']} x and restore "
        f"{results['restore_default']['speed_vs_zlib']} x as fast as zlib in the same rounds. "
        f"Archives: {create['compression_ratio']} of the source with ISA-L, "
        f"{results['create_zlib']['compression_ratio']} with zlib (adaptive mode stores what "
        f"the compressors cannot keep up with: {create['chunks_stored_to_keep_pace']} and "
        f"{results['create_zlib']['chunks_stored_to_keep_pace']} chunks). "
        f"create spends {create['median_cpu_seconds']} CPU-seconds, "
        f"{create['cpu_ratio_to_baseline']} x the baseline's {base['median_cpu_seconds']} "
        "(hashing every file, deflating, then encrypting the finished archive with age in a "
        "second pass, since its manifest, written last, is its first member); "
        f"to take 1/{CREATE_TARGET} of the baseline's time it would have to keep {needed:.1f} "
        f"of the {cpus} CPUs busy all along. "
        f"Load average (1 min) during the rounds: median "
        f"{document['load_during']['median_1min']}, max {document['load_during']['max_1min']}."
    )


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
