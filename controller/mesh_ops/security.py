"""`mesh-ops security list|unblock SOURCE`: the blocks of every agent, and lifting one fleet-wide.

Each agent counts and blocks on its own, in memory; this asks every agent of the group at once
through `mcp-mesh-sdk security ... --json` on the host (which calls its agent over loopback
with the token of its env file: the token never leaves the host). `unblock` lifts the source on
every agent that blocks it; an agent that does not block it is no failure.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from mcp_mesh_sdk.constants import CLI
from mesh_ops.inventory import Host, InventoryError
from mesh_ops.remote import on_each, run_json
from mesh_ops.status import table

MAX_SOURCE = 64  # as the agent names sources (mcp_mesh_sdk.agent.security.MAX_SOURCE_LENGTH)


def check_source(source: str) -> str:
    source = source.strip()
    if not (0 < len(source) <= MAX_SOURCE and source.isprintable() and " " not in source):
        raise InventoryError(f"{source!r} is not an address an agent could have blocked")
    return source


def fleet_blocks(hosts: list[Host]) -> tuple[list[dict[str, Any]], list[str]]:
    """(one row per host and blocked source, failures) from every host of `hosts`."""
    command = shlex.join([str(CLI), "security", "list", "--json"])
    rows, failures = [], []
    for host, listed, error in on_each(hosts, lambda c, h: run_json(c, h, command)):
        if error is not None:
            failures.append(error)
            continue
        for block in (listed or {}).get("blocked", []):
            rows.append({"host": host.name, **block})
    return rows, failures


def cmd_list(hosts: list[Host], as_json: bool) -> tuple[str, list[str]]:
    rows, failures = fleet_blocks(hosts)
    if as_json:
        return json.dumps({"blocked": rows, "failures": failures}, indent=2), failures
    if not rows:
        return "no blocked sources", failures
    cells = [[r["host"], r["source"], r["scope"], r["until"], r["reason"]] for r in rows]
    return table(["HOST", "SOURCE", "BLOCKS", "UNTIL", "REASON"], cells), failures


def cmd_unblock(hosts: list[Host], source: str, as_json: bool) -> tuple[str, list[str]]:
    source = check_source(source)
    command = shlex.join([str(CLI), "security", "unblock", source, "--json"])
    lifted, untouched, failures = [], [], []
    for host, reply, error in on_each(hosts, lambda c, h: run_json(c, h, command)):
        if error is not None:
            failures.append(error)
        elif (reply or {}).get("unblocked"):
            lifted.append(host.name)
        else:
            untouched.append(host.name)
    if as_json:
        document = {"source": source, "unblocked_on": lifted, "not_blocked_on": untouched,
                    "failures": failures}  # fmt: skip
        return json.dumps(document, indent=2), failures
    lines = [f"{source}: unblocked on {', '.join(lifted)}" if lifted else
             f"{source}: blocked on no agent that answered"]  # fmt: skip
    if lifted and untouched:
        lines.append(f"{source}: was not blocked on {', '.join(untouched)}")
    return "\n".join(lines), failures
