"""`mcp-mesh-sdk release activate`: make the release this command belongs to the running one."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mcp_mesh_sdk.errors import ConfigError, ConfigProblem

HELP = "activate this installed release: migrate, switch current, restart, wait healthy, soak"
if TYPE_CHECKING:
    from mcp_mesh_sdk.release import Plan

DEFAULT_ENV = {"agent": "/etc/mcp-mesh/agent.env", "registry": "/etc/mcp-mesh/registry.env"}


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    activate = actions.add_parser(
        "activate",
        help="make this release current and running",
        description="Run from <install>/releases/<version>/venv/bin: migrate the state, point "
        "current at this release (the old one becomes previous), restart the service, wait until "
        "it is healthy on this version (and listed by the registry), then soak.",
    )
    activate.add_argument("--service", choices=("agent", "registry"), default="agent")
    activate.add_argument(
        "--env-file", metavar="PATH", help="the service's env file (default /etc/mcp-mesh/*.env)"
    )
    activate.add_argument(
        "--state-dir", type=Path, help="state to migrate (default: from the env file)"
    )
    activate.add_argument(
        "--release-dir", type=Path, help="release to activate (default: the one running this)"
    )
    activate.add_argument(
        "--undo-with",
        type=Path,
        metavar="RELEASE_DIR",
        help="newer release that rolls back migrations this one does not know "
        "(default: the current release)",
    )
    activate.add_argument(
        "--soak", type=float, default=0.0, metavar="SECONDS", help="stay healthy this long"
    )
    activate.add_argument(
        "--timeout", type=float, default=60.0, metavar="SECONDS", help="limit of each wait"
    )
    activate.add_argument(
        "--skip-drain-delay",
        action="store_true",
        help="the host is already out of the load balancer: stop without the drain delay",
    )
    activate.add_argument("--json", action="store_true", help="print the outcome as JSON")


def _check_seconds(flag: str, value: float, limit: float) -> None:
    if not 0 <= value <= limit:
        raise ConfigError([ConfigProblem(flag, f"must be 0 to {limit:g} seconds, got {value:g}")])


def _plan(args: argparse.Namespace) -> Plan:
    from mcp_mesh_sdk.envfile import read_env_file
    from mcp_mesh_sdk.release import Plan, release_dir_of_running_binary

    _check_seconds("--soak", args.soak, 3600)
    _check_seconds("--timeout", args.timeout, 3600)
    release_dir = (args.release_dir or release_dir_of_running_binary()).resolve()
    if release_dir.parent.name != "releases":
        raise ConfigError(
            [ConfigProblem("--release-dir", f"{release_dir} is not inside a releases directory")]
        )
    env = read_env_file(args.env_file or DEFAULT_ENV[args.service])
    common = {
        "release_dir": release_dir,
        "install_dir": release_dir.parent.parent,
        "soak": args.soak,
        "timeout": args.timeout,
        "skip_drain_delay": args.skip_drain_delay,
        "undo_with": args.undo_with.resolve() if args.undo_with else None,
    }
    if args.service == "registry":
        from mcp_mesh_sdk.registry.config import load_registry_config

        registry = load_registry_config(env)
        state_dir = args.state_dir or registry.db_path.parent
        return Plan(
            service="registry", state_dir=state_dir, url=_local_url(registry.host, registry.port),
            **common,
        )  # fmt: skip
    from mcp_mesh_sdk.config import load_agent_config

    agent = load_agent_config(env)
    return Plan(
        service="agent",
        state_dir=args.state_dir or agent.state_dir,
        url=_local_url(agent.host, agent.port),
        registry_url=agent.mesh_registry_url,
        agent_name=agent.agent_name,
        **common,
    )


def _local_url(host: str, port: int) -> str:
    """Where this host reaches its own service: loopback unless bound to one address."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run(args: argparse.Namespace) -> int:
    from mcp_mesh_sdk.release import Activation, ActivationFailed

    activation = Activation(_plan(args))
    try:
        report = activation.run()
    except ActivationFailed as failure:
        if args.json:
            document = {**activation.report.to_json(), "failed_step": failure.step}
            print(json.dumps({**document, "error": failure.cause}, indent=2))
        print(f"mcp-mesh-sdk release: {failure}", file=sys.stderr)
        return failure.exit_code
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        took = sum(report.seconds.values())
        print(f"release {report.release} is current and healthy ({took:.1f} s)")
    return 0
