"""`mcp-mesh-sdk diagnose`: system health, critical paths and the local agent, for playbooks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mcp_mesh_sdk.constants import AGENT_ENV
from mcp_mesh_sdk.errors import ConfigError, OpsError

HELP = (
    "check CPU, memory, disks, critical paths, certificates and the local agent "
    "(exit 0 ok, 1 issues, 2 error)"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--env-file", metavar="PATH", help=f"agent env file (default {AGENT_ENV})")
    parser.add_argument(
        "--cpu-interval", type=float, default=1.0, help="seconds CPU use is sampled (default 1)"
    )
    parser.add_argument(
        "--certificate",
        metavar="FILE",
        action="append",
        default=[],
        help="a PEM certificate whose expiry to check, besides the agent's (repeatable)",
    )
    parser.add_argument(
        "--served-certificate",
        metavar="HOST:PORT",
        action="append",
        default=[],
        help="a TLS endpoint (e.g. the load balancer) whose served certificate's expiry to check "
        "(repeatable)",
    )


def _print_text(report: dict[str, Any]) -> None:
    system = report["system"]
    print(f"status: {report['status']}  ({report['host']}, {report['timestamp']})")
    print(
        f"cpu {system['cpu_percent']}%  memory {system['memory_percent']}% "
        f"({system['available_memory_mb']} MB available)  load {system['load_average']}"
    )
    for disk in report["disks"]:
        print(f"disk {disk['usage_percent']}% used, {disk['free_gb']} GB free: {disk['paths']}")
    agent = report["agent"]
    if agent is not None:
        state = agent.get("status") if agent["running"] else f"not running ({agent.get('error')})"
        print(f"agent: {state}")
    for certificate in report["certificates"]:
        if "error" not in certificate:
            print(
                f"certificate {certificate['path']}: expires {certificate['not_after']} "
                f"({certificate['days_left']} days)"
            )
    for issue in report["issues"]:
        print(f"ISSUE: {issue}")


def run(args: argparse.Namespace) -> int:
    from mcp_mesh_sdk.diagnose import PsutilProbe, diagnose
    from mcp_mesh_sdk.opspaths import agent_paths

    try:
        paths = agent_paths(args.env_file)
        report = diagnose(
            paths.state_dir,
            paths.base_directory,
            agent_port=paths.port,
            agent_expected=paths.env_file is not None,
            probe=PsutilProbe(cpu_interval=max(0.0, args.cpu_interval)),
            env_file=paths.env_file,
            agent_tls=paths.tls,
            certificates=[Path(path) for path in args.certificate],
            served_certificates=args.served_certificate,
        )
    except ConfigError as exc:  # "could not run" is exit 2 here, as the playbooks expect
        raise OpsError(str(exc)) from exc
    except OSError as exc:
        raise OpsError(f"diagnose could not run: {exc}") from exc
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_text(report)
    return 1 if report["issues"] else 0
