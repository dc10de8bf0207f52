"""`python -m bench [NAME ...]`: run benchmarks (default: all), then rewrite docs/performance.md.

Each benchmark is a module `bench/<name>.py` with `main() -> dict` that writes
`bench/results/<name>.json`; `python -m bench.<name>` runs one alone. `--report-only`
rewrites the summary from the results already in the repo.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.report import write_report

# The order they run in: cheap first, so a failure late costs least.
BENCHMARKS = ("agent", "mcp", "tls", "backup", "deploy", "upgrade", "restore")
SUITE = Path(__file__).resolve().parent / "results" / "suite.json"
SUITE_BOUND_S = 20 * 60


def available() -> list[str]:
    found = []
    for name in BENCHMARKS:
        try:
            importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"bench.{name}":
                raise
            continue
        found.append(name)
    return found


def record_suite(seconds: dict[str, float], failed: list[str], total: float) -> None:
    """bench/results/suite.json: how long a full `make bench` took, against issue #9's bound."""
    document = {
        "benchmark": "suite",
        "statistic": "wall time of one full `make bench` (python -m bench), per benchmark",
        "target": f"the whole suite in under {SUITE_BOUND_S // 60} minutes on this machine kind",
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": list(os.getloadavg())},
        "seconds": seconds,
        "failed": ", ".join(failed) or "none",
        "bound": {
            "total_s": round(total, 1),
            "target_s": SUITE_BOUND_S,
            "met": total < SUITE_BOUND_S and not failed,
        },
    }
    SUITE.parent.mkdir(parents=True, exist_ok=True)
    SUITE.write_text(json.dumps(document, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default: {', '.join(BENCHMARKS)})"
    )
    parser.add_argument("--report-only", action="store_true", help="only rewrite the summary")
    args = parser.parse_args(argv)
    names = [] if args.report_only else (args.names or available())
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"no such benchmark: {', '.join(unknown)} (have: {', '.join(available())})")
    failed = []
    # restore runs on the lab upgrade deployed (one deploy less), when both run; restore brings
    # up a lab of its own when upgrade failed or did not run.
    share_lab = "upgrade" in names and "restore" in names
    shared_lab: str | None = None
    seconds: dict[str, float] = {}
    suite_started = time.monotonic()
    try:
        for name in names:
            started = time.monotonic()
            print(f"== bench {name}", flush=True)
            module = importlib.import_module(f"bench.{name}")
            options: dict[str, Any] = {}
            if name == "upgrade" and share_lab:
                options["keep_lab"] = True
            if name == "restore" and shared_lab:
                options["lab_name"] = shared_lab
            try:
                module.main(**options)
            except Exception as exc:  # one broken benchmark must not hide the others' results
                print(f"== bench {name} FAILED: {exc!r}", file=sys.stderr, flush=True)
                failed.append(name)
                continue
            finally:
                if name == "restore" and shared_lab:
                    importlib.import_module("bench.upgrade").take_down_lab()
                    shared_lab = None
            if name == "upgrade" and share_lab:
                shared_lab = module.LAB
            seconds[name] = round(time.monotonic() - started, 1)
            print(f"== bench {name} done in {seconds[name]:.0f} s", flush=True)
    finally:
        if shared_lab:  # restore never ran (interrupted)
            importlib.import_module("bench.upgrade").take_down_lab()
    total = time.monotonic() - suite_started
    print(f"== {len(names)} benchmarks in {total:.0f} s", flush=True)
    if names and names == available():  # the whole suite: its time against the bound
        record_suite(seconds, failed, total)
    path = write_report()
    print(f"summary written to {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
