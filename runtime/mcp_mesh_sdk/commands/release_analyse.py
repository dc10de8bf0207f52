"""`mcp-mesh-sdk release analyse`: judge a canary by its real traffic (see `mcp_mesh_sdk.canary`).

Exit 0 when the outcome is pass, 1 when it is fail (the reason on stderr), 78 on bad options.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_mesh_sdk.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from mcp_mesh_sdk.canary import Settings

HELP = "watch a canary's real traffic for a window and judge the new release against a baseline"

# option -> (Thresholds field, type, lowest, highest)
THRESHOLD_OPTIONS: dict[str, tuple[str, type, float, float]] = {
    "--error-rate": ("error_rate", float, 0.0, 1.0),
    "--p95-ms": ("p95_ms", float, 1.0, 600_000.0),
    "--avg-ms": ("avg_ms", float, 1.0, 600_000.0),
    "--min-errors": ("min_errors", int, 1, 1_000_000),
    "--min-calls": ("min_calls", int, 1, 1_000_000),
    "--min-calls-latency": ("min_calls_latency", int, 1, 1_000_000),
    "--baseline-factor": ("baseline_factor", float, 1.0, 1000.0),
    "--latency-factor": ("latency_factor", float, 1.0, 1000.0),
    "--latency-margin-ms": ("latency_margin_ms", float, 0.0, 600_000.0),
}


def configure_analyse(parser: argparse.ArgumentParser) -> None:
    """Options of `release analyse`; every value is checked by `run_analyse` (ConfigError)."""
    parser.add_argument(
        "--canary", metavar="URL", help="the canary's metrics, e.g. http://10.0.0.5:8080/metrics"
    )
    parser.add_argument(
        "--baseline",
        metavar="URL",
        action="append",
        default=[],
        help="an agent still on the old release (repeatable)",
    )
    parser.add_argument(
        "--baseline-version", metavar="V", help="skip baselines that do not report this version"
    )
    parser.add_argument(
        "--canary-version",
        metavar="V",
        help="the release the canary must run (an error, not a verdict, when it does not)",
    )
    parser.add_argument("--window", default="10", metavar="SECONDS", help="watch this long (10)")
    parser.add_argument(
        "--max-window",
        metavar="SECONDS",
        help="watch on, this long in all, while the canary has too few calls (the window)",
    )
    parser.add_argument(
        "--interval", default="1", metavar="SECONDS", help="poll every SECONDS, 0.25 to 5 (1)"
    )
    parser.add_argument(
        "--inconclusive",
        default="pass",
        metavar="pass|fail",
        help="outcome when the canary got too few calls to judge (pass)",
    )
    parser.add_argument(
        "--ca-file",
        metavar="FILE",
        help="CA bundle https:// agents are verified with (default: the system's CAs)",
    )
    parser.add_argument("--json", action="store_true", help="print the result document as JSON")
    thresholds = parser.add_argument_group("thresholds (defaults: the seed's and canary.py's)")
    for option, (name, kind, _, _) in THRESHOLD_OPTIONS.items():
        thresholds.add_argument(option, metavar="N" if kind is int else "X", dest=name)


def _number(
    problems: list[ConfigProblem], option: str, raw: str, kind: type, low: float, high: float
) -> Any:
    try:
        value = int(raw) if kind is int else float(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        problems.append(ConfigProblem(option, f"not {what}: {raw!r}"))
        return None
    if not (math.isfinite(value) and low <= value <= high):
        problems.append(ConfigProblem(option, f"must be {low:g} to {high:g}, got {raw}"))
        return None
    return value


def settings_from(args: argparse.Namespace) -> Settings:
    """The analysis settings from the options; ConfigError lists every bad one."""
    from mcp_mesh_sdk.canary import Settings, Thresholds, metrics_url

    problems: list[ConfigProblem] = []
    canary = ""
    if not args.canary:
        problems.append(ConfigProblem("--canary", "required: the canary's metrics URL"))
    else:
        try:
            canary = metrics_url(args.canary)
        except ValueError as exc:
            problems.append(ConfigProblem("--canary", str(exc)))
    baselines: list[str] = []
    for raw in args.baseline:
        try:
            url = metrics_url(raw)
        except ValueError as exc:
            problems.append(ConfigProblem("--baseline", str(exc)))
            continue
        if url == canary:
            problems.append(ConfigProblem("--baseline", f"{raw} is the canary"))
        elif url not in baselines:
            baselines.append(url)
    window = _number(problems, "--window", args.window, float, 0.0, 3600.0)
    if window == 0:
        problems.append(ConfigProblem("--window", "must be more than 0 seconds"))
    max_window = None
    if args.max_window is not None:
        max_window = _number(problems, "--max-window", args.max_window, float, 0.0, 3600.0)
        if window and max_window is not None and max_window < window:
            problems.append(
                ConfigProblem("--max-window", f"shorter than the window ({window:g} s)")
            )
    interval = _number(problems, "--interval", args.interval, float, 0.25, 5.0)
    if args.inconclusive not in ("pass", "fail"):
        problems.append(ConfigProblem("--inconclusive", f"pass or fail, not {args.inconclusive!r}"))
    overrides: dict[str, Any] = {}
    for option, (name, kind, low, high) in THRESHOLD_OPTIONS.items():
        raw = getattr(args, name)
        if raw is not None:
            overrides[name] = _number(problems, option, raw, kind, low, high)
    versions = {}
    for option in ("baseline_version", "canary_version"):
        raw = getattr(args, option)
        versions[option] = raw.strip() if raw else None
        if raw is not None and not versions[option]:
            problems.append(ConfigProblem("--" + option.replace("_", "-"), "empty"))
    if problems:
        raise ConfigError(problems)
    return Settings(
        canary=canary,
        baselines=tuple(baselines),
        baseline_version=versions["baseline_version"],
        canary_version=versions["canary_version"],
        window=float(window),
        max_window=max_window,
        interval=float(interval),
        thresholds=Thresholds(**overrides),
        inconclusive=args.inconclusive,
        ca_file=Path(args.ca_file) if args.ca_file else None,
    )


def _line(figures: dict[str, Any]) -> str:
    ratio = figures["server_error_ratio"]
    parts = [f"{figures['calls']} calls", f"{(ratio or 0.0):.1%} server errors"]
    if figures["p95_ms"] is not None:
        parts.append(f"p95 {figures['p95_ms']:.1f} ms")
    if figures["avg_ms"] is not None:
        parts.append(f"avg {figures['avg_ms']:.1f} ms")
    return ", ".join(parts)


def run_analyse(args: argparse.Namespace) -> int:
    from mcp_mesh_sdk import canary

    document = canary.analyse(settings_from(args))
    if args.json:
        print(json.dumps(document, indent=2))
    if document["outcome"] == "fail":
        print(f"mcp-mesh-sdk release: analysis failed: {document['message']}", file=sys.stderr)
        return 1
    if not args.json:
        watched = document["canary"]
        print(
            f"canary {watched['url']} ({watched['version']}): {document['verdict']} after "
            f"{document['seconds']:.1f} s: {_line(watched)}"
        )
        if document["baseline"] is not None:
            base = document["baseline"]
            print(f"baseline ({len(base['urls'])} agent(s)): {_line(base)}")
        for skipped in document["skipped_baselines"]:
            print(f"skipped baseline {skipped['url']}: {skipped['reason']}")
    if document["decided_by_policy"]:
        print(f"mcp-mesh-sdk release: analysis {document['message']}", file=sys.stderr)
    return 0
