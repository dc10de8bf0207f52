"""`mcp-mesh-sdk release summary`: the per-host table at the end of a rollout (stdin: JSON)."""

from __future__ import annotations

import argparse
import json
import sys

from mcp_mesh_sdk.errors import OpsError


def configure_summary(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run_summary(args: argparse.Namespace) -> int:
    from mcp_mesh_sdk.rollout_summary import render_table, summarise

    try:
        records = json.load(sys.stdin)
    except ValueError as exc:
        raise OpsError(f"standard input is not JSON: {exc}") from exc
    if not isinstance(records, list):
        raise OpsError("standard input must be a JSON list of host cycle records")
    summary = summarise(records)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(render_table(summary))
    return 0
