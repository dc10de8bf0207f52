"""The fleet status: one row per agent and the verdict, from what was read on the hosts.

`mesh-ops status` reads it over SSH, playbooks/fleet_status.yml with Ansible; both hand the
same raw results to `fleet_status()`, so both print the same table. One agent's results
(null or {}: the host did not answer), as Ansible registers them:

    {"service": {"ActiveState": "active", ...},       # systemd_service .status
     "health": {"status": 200, "json": {...}},        # GET /health
     "ready": {"status": 200},                        # GET /ready
     "detailed": {"status": 200, "json": {...}},      # GET /health/detailed
     "incidents": {"rc", "stdout", "stderr"}}         # mcp-mesh-sdk incidents --json --open

and the load balancer's `mcp-mesh-sdk lb status --json` as {"rc", "stdout", "stderr"} (or
null when there is none). `python -m mesh_ops.status [--json]` reads
`{"hosts": {HOST: RESULTS | null}, "balancer": RESULT | null}` on stdin and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mesh_ops.diagnostics_report import command_json

HEADERS = ["HOST", "VERSION", "ACTIVE", "READY", "REGISTERED", "UPTIME", "INCIDENTS", "LB"]
HEALTHY = {"active": True, "ready": True, "registered": True}
BALANCER_UP = "UP"


def uptime(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h" if days else f"{hours}h{minutes:02d}m"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=False)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=False)).rstrip()
        for line in lines
    )


def _answer(result: Any) -> tuple[int | None, dict[str, Any]]:
    """(HTTP status, JSON body) of a GET as Ansible's uri module registers it."""
    if not isinstance(result, dict):
        return None, {}
    status = result.get("status")
    body = result.get("json")
    return (status if isinstance(status, int) and status > 0 else None), (
        body if isinstance(body, dict) else {}
    )


def balancer_states(result: Any) -> dict[str, str] | None:
    """Each server's state in the load balancer, or None when it could not be read."""
    listed, _ = command_json(result)
    if not isinstance(listed, dict) or not isinstance(listed.get("servers"), list):
        return None
    return {str(s.get("server")): str(s.get("status")) for s in listed["servers"]}


def agent_status(name: str, raw: dict[str, Any] | None, in_balancer: str | None) -> dict[str, Any]:
    """One agent's row from its results; `in_balancer`: its state there (None: not asked)."""
    if not raw:
        return {"host": name, "reachable": False, "version": None, "active": False,
                "ready": False, "registered": False, "uptime_seconds": None,
                "open_incidents": None, "balancer": in_balancer, "healthy": False}  # fmt: skip
    _, health = _answer(raw.get("health"))
    ready, _ = _answer(raw.get("ready"))
    _, detailed = _answer(raw.get("detailed"))
    listed, _ = command_json(raw.get("incidents"))
    incidents = listed.get("incidents") if isinstance(listed, dict) else None
    row = {
        "host": name,
        "reachable": True,
        "version": health.get("version"),
        "active": (raw.get("service") or {}).get("ActiveState") == "active",
        "ready": ready == 200,
        "registered": bool((detailed.get("checks") or {}).get("registry", {}).get("registered")),
        "uptime_seconds": health.get("uptime_seconds"),
        "open_incidents": len(incidents) if isinstance(incidents, list) else None,
        "balancer": in_balancer,
    }
    row["healthy"] = all(row[key] == value for key, value in HEALTHY.items()) and (
        in_balancer in (None, "?", BALANCER_UP)
    )
    return row


def fleet_status(
    gathered: dict[str, dict[str, Any] | None], balancer: Any = None
) -> dict[str, Any]:
    """Every agent's row and the verdict: healthy when every agent is active, ready,
    registered and UP in the load balancer (when there is one to ask)."""
    states = None if balancer is None else balancer_states(balancer)

    def in_balancer(name: str) -> str | None:
        if balancer is None:
            return None
        return "?" if states is None else states.get(name, "absent")

    rows = [agent_status(name, raw, in_balancer(name)) for name, raw in gathered.items()]
    problems = [row["host"] for row in rows if not row["healthy"]]
    if balancer is not None and states is None:
        problems.append("the load balancer (its servers could not be read)")
    return {"healthy": not problems, "unhealthy": problems, "rows": rows}


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def render_table(status: dict[str, Any]) -> str:
    """The table `mesh-ops status` prints; LB only when a load balancer was asked."""
    with_balancer = any(row["balancer"] is not None for row in status["rows"])
    headers = HEADERS if with_balancer else HEADERS[:-1]
    lines = []
    for row in status["rows"]:
        if not row["reachable"]:
            cells = [row["host"], "-", "?", "?", "?", "-", "?"]
        else:
            incidents = row["open_incidents"]
            cells = [
                row["host"], row["version"] or "-", _yes(row["active"]), _yes(row["ready"]),
                _yes(row["registered"]), uptime(row["uptime_seconds"]),
                "?" if incidents is None else str(incidents),
            ]  # fmt: skip
        if with_balancer:
            cells.append(row["balancer"])
        if not row["reachable"]:
            cells[-1] += "  (unreachable)"
        lines.append(cells)
    return table(headers, lines)


def verdict(status: dict[str, Any]) -> str:
    if status["healthy"]:
        return "fleet healthy"
    return "fleet NOT healthy: " + ", ".join(status["unhealthy"])


def main(argv: list[str] | None = None) -> int:
    top = argparse.ArgumentParser(
        prog="python -m mesh_ops.status",
        description="Print the fleet status table from gathered results (JSON on stdin).",
    )
    top.add_argument("--json", action="store_true", help="print rows and verdict as JSON")
    args = top.parse_args(argv)
    try:
        gathered = json.load(sys.stdin)
        hosts = gathered["hosts"]
        if not isinstance(hosts, dict):
            raise TypeError("'hosts' must map host names to results")
        status = fleet_status(hosts, gathered.get("balancer"))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        print(f"mesh-ops status: cannot read the gathered results: {exc!r}", file=sys.stderr)
        return 2
    print(
        json.dumps(status, indent=2) if args.json else f"{render_table(status)}\n{verdict(status)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
