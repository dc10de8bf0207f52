"""`mcp-mesh-sdk lb`: the load balancer's servers, drained and enabled through HAProxy's socket."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mcp_mesh_sdk.errors import ConfigError, ConfigProblem
from mcp_mesh_sdk.haproxy import DEFAULT_SOCKET, AdminSocket, LoadBalancer, ServerState

HELP = "show, drain and enable the load balancer's servers (HAProxy admin socket)"

EXIT_NOT_DRAINED = 3  # sessions were still open when --wait ran out (the server is MAINT anyway)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--socket",
        default=str(DEFAULT_SOCKET),
        metavar="PATH",
        help=f"HAProxy admin socket (default {DEFAULT_SOCKET})",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser("status", help="every backend server with its state and sessions")
    status.add_argument("--json", action="store_true", help="print JSON")
    drain = actions.add_parser(
        "drain", help="stop new sessions, wait for open ones to end, then put the server in MAINT"
    )
    drain.add_argument("server", metavar="SERVER", help="server name or backend/server")
    drain.add_argument(
        "--wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="longest wait for open sessions to end (default 30)",
    )
    drain.add_argument("--json", action="store_true", help="print JSON")
    enable = actions.add_parser("enable", help="put a server back in service")
    enable.add_argument("server", metavar="SERVER", help="server name or backend/server")
    enable.add_argument(
        "--wait-up",
        type=float,
        nargs="?",
        const=60.0,
        default=None,
        metavar="SECONDS",
        help="wait until health checks report it UP (default limit 60 s)",
    )
    enable.add_argument(
        "--healthy",
        action="store_true",
        help="you have just checked the server is healthy: mark it UP now, not after rise checks",
    )
    enable.add_argument(
        "--weight",
        type=_weight,
        metavar="WEIGHT",
        help="weight to take traffic with: 0-256, or a percentage of the configured one (25%%)",
    )
    enable.add_argument("--json", action="store_true", help="print JSON")
    weigh = actions.add_parser(
        "weight", help="set a server's weight (0-256, or a percentage of its configured weight)"
    )
    weigh.add_argument("server", metavar="SERVER", help="server name or backend/server")
    weigh.add_argument("weight", type=_weight, metavar="WEIGHT", help="e.g. 100%% or 25%%")
    weigh.add_argument("--json", action="store_true", help="print JSON")


def _weight(value: str) -> str:
    """A weight HAProxy takes: an integer 0-256, or a percentage 0-100 followed by %."""
    number = value[:-1] if value.endswith("%") else value
    limit = 100 if value.endswith("%") else 256
    if not number.isdigit() or not 0 <= int(number) <= limit:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a weight: give 0-256 or a percentage such as 25%"
        )
    return f"{int(number)}%" if value.endswith("%") else str(int(number))


def run(args: argparse.Namespace) -> int:
    for option in ("wait", "wait_up"):
        value = getattr(args, option, None)
        if value is not None and not 0 <= value <= 3600:
            flag = "--" + option.replace("_", "-")
            raise ConfigError([ConfigProblem(flag, f"must be 0 to 3600 seconds, got {value:g}")])
    balancer = LoadBalancer(AdminSocket(args.socket))
    if args.action == "status":
        servers = balancer.servers()
        if args.json:
            _print_json({"socket": args.socket, "servers": [s.as_dict() for s in servers]})
        else:
            _print_table(servers)
        return 0
    if args.action == "drain":
        result = balancer.drain(args.server, args.wait)
        _report(args.json, result, _drain_line(result))
        return 0 if result["drained"] else EXIT_NOT_DRAINED
    if args.action == "weight":
        result = balancer.weigh(args.server, args.weight)
        _report(args.json, result, f"{result['server']}: weight {result['weight']}")
        return 0
    result = balancer.enable(args.server, args.wait_up, healthy=args.healthy, weight=args.weight)
    _report(args.json, result, f"{result['server']}: {result['status']}")
    return 0


def _drain_line(result: dict[str, Any]) -> str:
    if result["drained"]:
        return (
            f"{result['server']}: drained in {result['waited_seconds']:g} s, now {result['status']}"
        )
    return (
        f"{result['server']}: {result['sessions_left']} session(s) still open after "
        f"{result['waited_seconds']:g} s; now {result['status']}"
    )


def _report(as_json: bool, result: dict[str, Any], line: str) -> None:
    if as_json:
        _print_json(result)
    else:
        print(line)


def _print_json(data: dict[str, Any]) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _print_table(servers: list[ServerState]) -> None:
    rows = [("SERVER", "STATUS", "SESSIONS", "WEIGHT", "CHECK", "ADDRESS")]
    rows += [
        (s.name, s.status_detail, str(s.sessions), str(s.weight), s.check, s.address)
        for s in servers
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
