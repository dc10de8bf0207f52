"""`python -m bench [NAME ...]`: run benchmarks (default: all), then rewrite docs/performance.md.

Each benchmark is a module `bench/<name>.py` with `main() -> dict` that writes
`bench/results/<name>.json`; `python -m bench.<name>` runs one alone. `--report-only`
rewrites the summary from the results already in the repo.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from bench.report import write_report

# The order they run in: cheap first, so a failure late costs least.
BENCHMARKS = ("agent", "backup", "deploy", "upgrade", "restore")


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
    for name in names:
        started = time.monotonic()
        print(f"== bench {name}", flush=True)
        try:
            importlib.import_module(f"bench.{name}").main()
        except Exception as exc:  # one broken benchmark must not hide the others' results
            print(f"== bench {name} FAILED: {exc!r}", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        print(f"== bench {name} done in {time.monotonic() - started:.0f} s", flush=True)
    path = write_report()
    print(f"summary written to {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
