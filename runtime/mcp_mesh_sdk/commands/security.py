"""`mcp-mesh-sdk security list|unblock SOURCE`: the blocks of the agent running on this host.

The agent holds its blocks in memory; this asks it over loopback (`GET` and `DELETE
/security/blocks`, with the token of its env file), so a lifted block is lifted at once and a
listed one is what the agent enforces right now.
"""

from __future__ import annotations

import argparse
import json

from mcp_mesh_sdk.constants import AGENT_ENV

HELP = "list the sources the local agent blocks, or lift a block (security unblock SOURCE)"


def _common(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("--json", action="store_true", default=default, help="print JSON")
    parser.add_argument(
        "--env-file",
        default=default,
        metavar="PATH",
        help=f"the running agent's env file: its port and token (default {AGENT_ENV})",
    )


def configure(parser: argparse.ArgumentParser) -> None:
    _common(parser, None)
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    listing = sub.add_parser("list", help="the blocked sources, why and until when (default)")
    _common(listing, argparse.SUPPRESS)
    unblock = sub.add_parser("unblock", help="lift the block of SOURCE at once")
    unblock.add_argument("source", help="the blocked address, as `security list` shows it")
    _common(unblock, argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from mcp_mesh_sdk.agent.security_admin import valid_source
    from mcp_mesh_sdk.errors import OpsError
    from mcp_mesh_sdk.local_agent import agent_reply, local_agent, query

    if args.action == "unblock":
        source = args.source.strip()
        if not valid_source(source):
            raise OpsError(f"{args.source!r} is not an address the agent could have blocked")
        agent = local_agent(args.env_file)
        status, body = agent.call("DELETE", "/security/blocks" + query(source=source))
        reply = agent_reply(status, body, args.env_file)
        if args.json:
            print(json.dumps(reply, indent=2))
        elif reply.get("unblocked"):
            print(f"unblocked {(reply.get('block') or {}).get('source', source)}")
        else:
            print(f"{source} is not blocked (nothing to lift)")
        return 0
    agent = local_agent(args.env_file)
    status, body = agent.call("GET", "/security/blocks")
    reply = agent_reply(status, body, args.env_file)
    if args.json:
        print(json.dumps(reply, indent=2))
        return 0
    settings = (
        f"window {reply.get('window_minutes')} min, threshold {reply.get('threshold')}, "
        f"{reply.get('tracked_sources')} source(s) tracked"
    )
    blocked = reply.get("blocked") or []
    if not blocked:
        print(f"no blocked sources ({settings})")
        return 0
    rows = [["SOURCE", "BLOCKS", "UNTIL", "REASON"]]
    rows += [[b["source"], b["scope"], b["until"], b["reason"]] for b in blocked]
    widths = [max(len(str(row[i])) for row in rows) for i in range(3)]
    for row in rows:
        padded = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*padded, row[3]]))
    print(f"{len(blocked)} blocked ({settings})")
    return 0
