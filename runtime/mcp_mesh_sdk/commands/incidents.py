"""`mcp-mesh-sdk incidents`: list this host's incidents, or resolve one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mcp_mesh_sdk.constants import AGENT_ENV

HELP = "list the incidents the agent detected (incidents resolve ID --note TEXT closes one)"


def _common(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("--json", action="store_true", default=default, help="print JSON")
    parser.add_argument(
        "--state-dir", type=Path, default=default, help="state directory (default: from env file)"
    )
    parser.add_argument(
        "--env-file",
        default=default,
        metavar="PATH",
        help=f"agent env file to read MCP_MESH_STATE_DIR from (default {AGENT_ENV})",
    )


def configure(parser: argparse.ArgumentParser) -> None:
    _common(parser, None)
    parser.add_argument("--open", action="store_true", help="only incidents still open")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    resolve = sub.add_parser("resolve", help="mark an incident resolved")
    resolve.add_argument("id", help="the incident's id (INC-...)")
    resolve.add_argument("--note", required=True, help="what was done (kept as the resolution)")
    _common(resolve, argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from mcp_mesh_sdk.incidents import IncidentStore
    from mcp_mesh_sdk.opspaths import agent_paths

    state_dir = args.state_dir or agent_paths(args.env_file).state_dir
    store = IncidentStore(state_dir)
    if args.action == "resolve":
        if not args.note.strip():
            from mcp_mesh_sdk.errors import OpsError

            raise OpsError("--note must say what was done")
        incident = store.resolve(args.id, args.note.strip())
        if args.json:
            print(json.dumps({"incident": incident.to_json()}, indent=2))
        else:
            print(f"resolved {incident.id}: {incident.title}")
        return 0
    incidents = store.open_incidents() if args.open else store.all()
    unreadable = store.unreadable_lines()
    if args.json:
        document = {
            "state_dir": str(state_dir),
            "incidents": [incident.to_json() for incident in incidents],
            "unreadable_lines": unreadable,
        }
        print(json.dumps(document, indent=2))
        return 0
    if not incidents:
        print("no open incidents" if args.open else "no incidents")
    for incident in incidents:
        print(
            f"{incident.id}  {incident.severity:<11}  {incident.status:<8}  "
            f"{incident.created_at}  {incident.title}"
        )
    if unreadable:
        print(f"warning: {unreadable} line(s) of {store.path} could not be read (kept as is)")
    return 0
