"""`mcp-mesh-sdk migrate`: bring the agent's state directory to this release's schema."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mcp_mesh_sdk.constants import AGENT_ENV

HELP = "apply (or roll back) state migrations; --status shows where the state stands"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--to", metavar="VERSION", help="migration id or number to stop at")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--rollback", action="store_true", help="undo migrations newer than --to (or the last)"
    )
    mode.add_argument(
        "--status", action="store_true", help="show applied and pending, change nothing"
    )
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
    parser.add_argument("--state-dir", type=Path, help="state directory (default: from env file)")
    parser.add_argument("--env-file", metavar="PATH", help=f"agent env file (default {AGENT_ENV})")


def run(args: argparse.Namespace) -> int:
    from mcp_mesh_sdk import migrate
    from mcp_mesh_sdk.opspaths import agent_paths

    state_dir = args.state_dir or agent_paths(args.env_file).state_dir
    if args.status:
        outcome = migrate.status(state_dir)
    elif args.rollback:
        outcome = migrate.rollback(state_dir, args.to)
    else:
        outcome = migrate.upgrade(state_dir, args.to)
    document = outcome.to_json()
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    for step in outcome.ran:
        print(f"{step['direction']:>4}  {step['id']}")
    applied = set(outcome.applied)
    if args.status:
        for migration in outcome.available:
            mark = "applied" if migration.id in applied else "pending"
            print(f"{mark:>7}  {migration.id}  {migration.description}")
    elif not outcome.ran:
        print("nothing to do")
    print(
        f"state schema version {document['schema_version']} "
        f"(this release: {document['latest_schema_version']}) in {state_dir}"
    )
    return 0
