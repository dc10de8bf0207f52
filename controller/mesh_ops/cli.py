"""`mesh-ops`: the fleet at a glance and everyday actions, over SSH from the controller.

    mesh-ops [-i INVENTORY] status [--json] | health | incidents [-g GROUP]
    mesh-ops [-i INVENTORY] logs HOST [-n N] [--follow]
    mesh-ops [-i INVENTORY] restart HOST
    mesh-ops [-i INVENTORY] security list|unblock SOURCE [-g GROUP] [--json]

The inventory is read with `ansible-inventory --list`, so hosts are reached as the playbooks
reach them (address, port, key, `ansible_user`, become through sudo). Every host of the group
is asked at once; a host that does not answer is named with the reason, the others are still
shown, and the exit status is 1. Hosts print JSON only (`mcp-mesh-sdk ... --json`, a small
python3 probe); no text output is parsed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.constants import AGENT_UNIT, CLI
from mesh_ops.inventory import (
    DEFAULT_INVENTORY,
    REPO,
    Host,
    Inventory,
    InventoryError,
    ansible_command,
    ansible_environment,
    load_inventory,
)
from mesh_ops.remote import (
    HostFailed,
    balancer_probe,
    connect,
    on_each,
    run,
    run_json,
    status_probe,
)
from mesh_ops.security import cmd_list as security_list
from mesh_ops.security import cmd_unblock as security_unblock
from mesh_ops.status import fleet_status, render_table, table, verdict

RESTART = REPO / "playbooks" / "restart.yml"
LOADBALANCER_GROUP = "loadbalancer"


def report_failures(failures: list[str]) -> int:
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


def cmd_status(inventory: Inventory, group: str, as_json: bool) -> int:
    """The table (or JSON) of `mesh_ops.status`: exit 1 unless the fleet is healthy."""
    agents = inventory.group(group)
    results = on_each(agents, status_probe)
    failures = [error for _, _, error in results if error is not None]
    balancer = None
    balancers = [h for h in inventory.hosts.values() if LOADBALANCER_GROUP in h.groups]
    if balancers:
        [(_, balancer, error)] = on_each(balancers[:1], balancer_probe)
        failures += [] if error is None else [error]
        balancer = balancer or {}
    status = fleet_status({host.name: probe for host, probe, _ in results}, balancer)
    print(
        json.dumps({**status, "failures": failures}, indent=2) if as_json else render_table(status)
    )
    if not status["healthy"] and not as_json:
        print(f"mesh-ops: {verdict(status)}", file=sys.stderr)
    return max(report_failures(failures), 0 if status["healthy"] else 1)


def cmd_health(hosts: list[Host]) -> int:
    def diagnose(connection: Any, host: Host) -> Any:
        result = run(connection, host, f"{CLI} diagnose --json", warn=True)
        try:
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
    command = f"journalctl --unit={AGENT_UNIT} --lines={lines} --no-pager" + (
        " --follow" if follow else ""
    )
    with connect(host) as connection:
        run(connection, host, command, hide=False, pty=follow)
    return 0


def cmd_security(hosts: list[Host], action: str, source: str | None, as_json: bool) -> int:
    """The blocks of every agent (`list`), or lift SOURCE on every agent (`unblock`)."""
    if action == "unblock":
        assert source is not None  # argparse requires it
        output, failures = security_unblock(hosts, source, as_json)
    else:
        output, failures = security_list(hosts, as_json)
    print(output)
    return report_failures(failures)


def cmd_restart(inventory_path: Path, host: Host, vault_password_file: Path | None) -> int:
    """Run `host` through the host cycle (playbooks/restart.yml), the one the rollouts use:
    drain, restart, wait until ready, smoke test, enable, judge it by its traffic."""
    if "agents" not in host.groups:
        raise InventoryError(f"{host.name} is not in group agents: only agents are restarted")
    ansible_playbook = ansible_command("ansible-playbook")
    inventory = str(inventory_path.resolve())  # ansible-playbook runs from the repository
    argv = [ansible_playbook, "-i", inventory, "--limit", host.name]
    if vault_password_file is not None:
        argv += ["--vault-password-file", str(vault_password_file.resolve())]
    argv.append(str(RESTART))
    print(f"{host.name}: restarting through the host cycle ({RESTART.name})", flush=True)
    try:
        done = subprocess.run(argv, cwd=REPO, env=ansible_environment(), check=False)
    except OSError as exc:
        raise HostFailed(f"{host.name}: cannot run {ansible_playbook}: {exc.strerror}") from exc
    if done.returncode != 0:
        raise HostFailed(f"{host.name}: restart failed (ansible-playbook exit {done.returncode})")
    print(f"{host.name}: restarted")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mesh-ops", description=__doc__.split("\n\n")[0])
    top.add_argument(
        "-i",
        "--inventory",
        type=Path,
        default=DEFAULT_INVENTORY,
        help=f"Ansible inventory, file or directory, as for ansible-playbook ({DEFAULT_INVENTORY})",
    )
    top.add_argument(
        "--vault-password-file",
        type=Path,
        metavar="FILE",
        help="for an inventory with vault-encrypted variables (or ANSIBLE_VAULT_PASSWORD_FILE)",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (
        ("status", "version, active, ready, registered, uptime, incidents, LB; 1 unless healthy"),
        ("health", "mcp-mesh-sdk diagnose on every host: CPU, memory, disk, issues"),
        ("incidents", "the incidents of every host (open ones unless --all)"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("-g", "--group", default="agents", help="inventory group (agents)")
        if name == "incidents":
            command.add_argument("--all", action="store_true", help="resolved ones too")
        if name == "status":
            command.add_argument("--json", action="store_true", help="rows and verdict as JSON")
    logs = sub.add_parser("logs", help="the agent's journal on one host")
    logs.add_argument("host")
    logs.add_argument("-n", "--lines", type=int, default=50, help="lines (default 50)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    restart = sub.add_parser(
        "restart", help="drain, restart, smoke-test, enable and judge one agent (restart.yml)"
    )
    restart.add_argument("host")
    security = sub.add_parser(
        "security", help="the sources each agent blocks (list), or lift one everywhere (unblock)"
    )
    actions = security.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every agent's blocked sources, why and until when")
    unblock = actions.add_parser("unblock", help="lift the block of SOURCE on every agent")
    unblock.add_argument("source", help="the blocked address, as `security list` shows it")
    for action in actions.choices.values():
        action.add_argument("-g", "--group", default="agents", help="inventory group (agents)")
        action.add_argument("--json", action="store_true", help="print JSON")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        inventory = load_inventory(args.inventory, args.vault_password_file)
        if args.command == "status":
            return cmd_status(inventory, args.group, args.json)
        if args.command == "health":
            return cmd_health(inventory.group(args.group))
        if args.command == "incidents":
            return cmd_incidents(inventory.group(args.group), args.all)
        if args.command == "security":
            hosts = inventory.group(args.group)
            return cmd_security(hosts, args.action, getattr(args, "source", None), args.json)
        host = inventory.host(args.host)
        if args.command == "logs":
            if args.lines < 1:
                raise InventoryError("-n must be at least 1")
            return cmd_logs(host, args.lines, args.follow)
        return cmd_restart(args.inventory, host, args.vault_password_file)
    except (InventoryError, HostFailed) as exc:
        print(f"mesh-ops: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
