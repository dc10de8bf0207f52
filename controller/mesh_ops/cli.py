"""`mesh-ops`: the fleet at a glance and everyday actions, over SSH from the controller.

    mesh-ops [-i INVENTORY] status | health | incidents [-g GROUP]
    mesh-ops [-i INVENTORY] logs HOST [-n N] [--follow]
    mesh-ops [-i INVENTORY] restart HOST

Every host of the group is asked at once; a host that does not answer is named with the
reason, the others are still shown, and the exit status is 1. Hosts print JSON only
(`mcp-mesh-sdk ... --json`, a small python3 probe); no text output is parsed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from mesh_ops.inventory import DEFAULT_INVENTORY, Host, InventoryError, load_inventory
from mesh_ops.remote import CLI, SERVICE, HostFailed, connect, on_each, run, run_json, status_probe

RESTART = Path(__file__).resolve().parents[1] / "playbooks" / "restart.yml"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=False)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=False)).rstrip()
        for line in lines
    )


def uptime(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h" if days else f"{hours}h{minutes:02d}m"


def status_row(name: str, probe: dict[str, Any]) -> list[str]:
    """One row of `status` from what the host's probe printed."""
    _, health = probe.get("health") or (None, None)
    health = health if isinstance(health, dict) else {}
    _, detailed = probe.get("detailed") or (None, None)
    checks = detailed.get("checks", {}) if isinstance(detailed, dict) else {}
    registry = checks.get("registry", {})
    incidents = probe.get("incidents")
    return [
        name,
        str(health.get("version") or "-"),
        "yes" if probe.get("active") else "no",
        "yes" if probe.get("ready") == 200 else "no",
        "yes" if registry.get("registered") else "no",
        uptime(health.get("uptime_seconds")),
        "?" if incidents is None else str(len(incidents)),
    ]


def report_failures(failures: list[str]) -> int:
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


def cmd_status(hosts: list[Host]) -> int:
    results = on_each(hosts, status_probe)
    rows, failures = [], []
    for host, probe, error in results:
        if error is not None:
            rows.append([host.name, "-", "?", "?", "?", "-", "?  (unreachable)"])
            failures.append(error)
        else:
            rows.append(status_row(host.name, probe))
    headers = ["HOST", "VERSION", "ACTIVE", "READY", "REGISTERED", "UPTIME", "INCIDENTS"]
    print(table(headers, rows))
    return report_failures(failures)


def cmd_health(hosts: list[Host]) -> int:
    def diagnose(connection: Any, host: Host) -> Any:
        result = run(connection, host, f"{CLI} diagnose --json", warn=True)
        try:
            import json

            return json.loads(result.stdout)
        except ValueError:
            raise HostFailed(
                f"{host.name}: diagnose could not run: {result.stderr.strip()}"
            ) from None

    rows, failures, unhealthy = [], [], 0
    for host, report, error in on_each(hosts, diagnose):
        if error is not None:
            rows.append([host.name, "unreachable", "-", "-", "-", ""])
            failures.append(error)
            continue
        system = report.get("system", {})
        disks = [d.get("usage_percent", 0) for d in report.get("disks", [])]
        issues = report.get("issues", [])
        unhealthy += bool(issues)
        rows.append([
            host.name, str(report.get("status")), f"{system.get('cpu_percent', '-')}%",
            f"{system.get('memory_percent', '-')}%", f"{max(disks, default=0)}%",
            "; ".join(issues),
        ])  # fmt: skip
    print(table(["HOST", "STATUS", "CPU", "MEMORY", "DISK", "ISSUES"], rows))
    return report_failures(failures) or (1 if unhealthy else 0)


def cmd_incidents(hosts: list[Host], include_resolved: bool) -> int:
    command = f"{CLI} incidents --json" + ("" if include_resolved else " --open")
    rows, failures = [], []
    for host, listed, error in on_each(hosts, lambda c, h: run_json(c, h, command)):
        if error is not None:
            failures.append(error)
            continue
        for incident in listed.get("incidents", []):
            rows.append([
                host.name, incident["id"], incident["severity"], incident["status"],
                incident["created_at"], incident["title"],
            ])  # fmt: skip
    if rows:
        print(table(["HOST", "ID", "SEVERITY", "STATUS", "CREATED", "TITLE"], rows))
    else:
        print("no incidents" if include_resolved else "no open incidents")
    return report_failures(failures)


def cmd_logs(host: Host, lines: int, follow: bool) -> int:
    command = f"journalctl --unit={SERVICE} --lines={lines} --no-pager" + (
        " --follow" if follow else ""
    )
    with connect(host) as connection:
        run(connection, host, command, hide=False, pty=follow)
    return 0


def cmd_restart(inventory_path: Path, host: Host) -> int:
    """Run `host` through the host cycle (playbooks/restart.yml), the one the rollouts use:
    drain, restart, wait until ready, smoke test, enable, judge it by its traffic."""
    if "agents" not in host.groups:
        raise InventoryError(f"{host.name} is not in group agents: only agents are restarted")
    ansible_playbook = shutil.which("ansible-playbook") or str(
        Path(sys.executable).parent / "ansible-playbook"
    )
    inventory = str(inventory_path.resolve())  # ansible-playbook runs from the repository
    argv = [ansible_playbook, "-i", inventory, "--limit", host.name, str(RESTART)]
    print(f"{host.name}: restarting through the host cycle ({RESTART.name})", flush=True)
    try:
        done = subprocess.run(argv, cwd=RESTART.parent.parent, check=False)
    except OSError as exc:
        raise HostFailed(f"{host.name}: cannot run {ansible_playbook}: {exc.strerror}") from exc
    if done.returncode != 0:
        raise HostFailed(f"{host.name}: restart failed (ansible-playbook exit {done.returncode})")
    print(f"{host.name}: restarted")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mesh-ops", description=__doc__.split("\n\n")[0])
    top.add_argument("-i", "--inventory", type=Path, default=DEFAULT_INVENTORY,
                     help=f"Ansible YAML inventory (default {DEFAULT_INVENTORY})")  # fmt: skip
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (
        ("status", "one table: version, active, ready, registered, uptime, open incidents"),
        ("health", "mcp-mesh-sdk diagnose on every host: CPU, memory, disk, issues"),
        ("incidents", "the incidents of every host (open ones unless --all)"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("-g", "--group", default="agents", help="inventory group (agents)")
        if name == "incidents":
            command.add_argument("--all", action="store_true", help="resolved ones too")
    logs = sub.add_parser("logs", help="the agent's journal on one host")
    logs.add_argument("host")
    logs.add_argument("-n", "--lines", type=int, default=50, help="lines (default 50)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    restart = sub.add_parser(
        "restart", help="drain, restart, smoke-test, enable and judge one agent (restart.yml)"
    )
    restart.add_argument("host")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        inventory = load_inventory(args.inventory)
        if args.command == "status":
            return cmd_status(inventory.group(args.group))
        if args.command == "health":
            return cmd_health(inventory.group(args.group))
        if args.command == "incidents":
            return cmd_incidents(inventory.group(args.group), args.all)
        host = inventory.host(args.host)
        if args.command == "logs":
            if args.lines < 1:
                raise InventoryError("-n must be at least 1")
            return cmd_logs(host, args.lines, args.follow)
        return cmd_restart(args.inventory, host)
    except (InventoryError, HostFailed) as exc:
        print(f"mesh-ops: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
