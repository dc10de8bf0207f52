"""python -m lab up|down|status|demo|facts: the lab of real systemd hosts the fleet deploys to."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence

from lab.demo import DEMO_PLAYBOOKS
from lab.errors import LabError
from lab.topology import DEFAULT_AGENTS, DEFAULT_DISTRO, DEFAULT_LAB, DISTROS, parse_distros

REQUIRED_TOOLS = ("systemd-nspawn", "ip", "ssh-keygen", "mount")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--name",
        default=os.environ.get("MESH_LAB_NAME", DEFAULT_LAB),
        help="which lab (1-8 lower-case letters/digits; default $MESH_LAB_NAME or %(default)s)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    start = sub.add_parser("up", parents=[common], help="boot the lab, write its inventory")
    start.add_argument(
        "--agents", type=int, default=DEFAULT_AGENTS, help="agent hosts (default %(default)s)"
    )
    start.add_argument(
        "--agent-distros",
        default=os.environ.get("MESH_LAB_AGENT_DISTROS") or DEFAULT_DISTRO,
        metavar="LIST",
        help="Debian releases the agents take in turn, comma-separated, of "
        + ", ".join(DISTROS)
        + " (lb1 runs the first; default $MESH_LAB_AGENT_DISTROS or %(default)s)",
    )
    start.add_argument(
        "--database",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("MESH_LAB_DATABASE") == "1",
        help="add db1: PostgreSQL (group database) and a second registry replica "
        "(default: on when $MESH_LAB_DATABASE=1)",
    )
    start.add_argument(
        "--monitoring",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("MESH_LAB_MONITORING") == "1",
        help="Prometheus and Alertmanager (mesh_monitoring) on db1, or on lb1 without --database "
        "(default: on when $MESH_LAB_MONITORING=1)",
    )
    sub.add_parser("down", parents=[common], help="stop the lab and remove every piece of it")
    sub.add_parser("status", parents=[common], help="the lab's hosts; exit 0 when all are up")
    demo = sub.add_parser("demo", parents=[common], help="run the demo playbooks against the lab")
    demo.add_argument(
        "--playbook",
        action="append",
        dest="playbooks",
        metavar="PATH",
        help="playbook to run, relative to the repo (repeatable; default: "
        + ", ".join(DEMO_PLAYBOOKS)
        + ")",
    )
    sub.add_parser(
        "facts",
        help="print the facts playbooks/lab_facts.yml gathered (JSON records on stdin) as a table",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(COMMANDS[args.command](args))
    except LabError as exc:
        print(f"lab {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lab {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`
        sys.stderr.close()
        return 0


def _need_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, mounts, containers)")
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        raise LabError(f"missing {', '.join(missing)} (run `make system-deps` as root)")


def _say(line: str) -> None:
    print(line, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    from lab.lifecycle import up

    distros = parse_distros(args.agent_distros)
    _need_root()
    result = up(
        args.name,
        args.agents,
        say=_say,
        agent_distros=distros,
        database=args.database,
        monitoring=args.monitoring,
    )
    topology = result.topology
    print(
        f"lab '{topology.lab}' is up: {len(topology.hosts)} hosts on {topology.subnet} "
        f"(controller {topology.controller}) in {result.seconds:.1f}s"
    )
    _print_hosts([(h.name, str(h.address), h.groups, h.distro, "up") for h in topology.hosts])
    print(f"inventory: {result.inventory}")
    print(f"ssh:       ssh -i {result.key} root@{topology.hosts[0].address}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from lab.lifecycle import down

    _need_root()
    removed = down(args.name)
    if not removed:
        print(f"lab '{args.name}' was not up; nothing to remove")
        return 0
    print(f"lab '{args.name}' is down; removed:")
    for piece in removed:
        print(f"  {piece}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from lab.lifecycle import status

    hosts = status(args.name)
    if hosts is None:
        print(f"lab '{args.name}' is not up (run `python -m lab up --name {args.name}`)")
        return 1
    _print_hosts([(h.name, h.address, h.groups, h.distro, "up" if h.up else "DOWN") for h in hosts])
    down = [h.name for h in hosts if not h.up]
    if down:
        print(f"{len(down)} of {len(hosts)} hosts down: {', '.join(down)}")
        return 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from lab.demo import run_demo
    from lab.lifecycle import status
    from lab.state import inventory_path

    hosts = status(args.name)
    if hosts is None or not all(h.up for h in hosts):
        raise LabError(f"lab '{args.name}' is not (fully) up; run `make lab-up` first")
    return run_demo(inventory_path(args.name), tuple(args.playbooks or DEMO_PLAYBOOKS))


FACT_COLUMNS = ("host", "address", "groups", "os", "python", "systemd", "state")


def cmd_facts(args: argparse.Namespace) -> int:
    """One row per host record {"host": ..., "groups": [...], ...} read from stdin."""
    try:
        records = json.load(sys.stdin)
    except ValueError as exc:
        raise LabError(f"stdin is not JSON: {exc}") from exc
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise LabError("stdin must be a JSON list of host records")
    rows = [
        tuple(_cell(record.get(column, "-")) for column in FACT_COLUMNS)
        for record in sorted(records, key=lambda record: str(record.get("host", "")))
    ]
    _print_table(tuple(column.upper() for column in FACT_COLUMNS), rows)
    return 0


def _cell(value: object) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def _print_hosts(rows: list[tuple[str, str, tuple[str, ...], str, str]]) -> None:
    table = [
        (name, address, ",".join(groups), distro, state)
        for name, address, groups, distro, state in rows
    ]
    _print_table(("HOST", "ADDRESS", "GROUPS", "DISTRO", "STATE"), table)


def _print_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    table = [header, *rows]
    widths = [max(len(row[column]) for row in table) for column in range(len(header))]
    for row in table:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


COMMANDS = {
    "up": cmd_up,
    "down": cmd_down,
    "status": cmd_status,
    "demo": cmd_demo,
    "facts": cmd_facts,
}
