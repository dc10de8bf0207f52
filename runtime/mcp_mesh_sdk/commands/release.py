"""`mcp-mesh-sdk release activate|smoke|analyse|summary`: the host cycle's commands.

`activate` makes the release this command belongs to the running one (see `release.py`);
`smoke` runs only the smoke test of the local agent's MCP endpoint (see `smoke.py`);
`analyse` judges an agent by its real traffic against a baseline (see `canary.py`);
`summary` turns what a rollout's host cycles returned into one table (`rollout_summary.py`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mcp_mesh_sdk.commands.release_analyse import configure_analyse, run_analyse
from mcp_mesh_sdk.commands.release_summary import configure_summary, run_summary
from mcp_mesh_sdk.constants import CONFIG_DIR, ENV_FILES
from mcp_mesh_sdk.errors import ConfigError, ConfigProblem

HELP = (
    "activate this installed release (migrate, switch current, restart, wait healthy, smoke, "
    "soak); smoke-test the local agent; judge an agent by its traffic; summarise a rollout"
)
if TYPE_CHECKING:
    from mcp_mesh_sdk.release import Plan


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    activate = actions.add_parser(
        "activate",
        help="make this release current and running",
        description="Run from <install>/releases/<version>/venv/bin: migrate the state, point "
        "current at this release (the old one becomes previous), restart the service, wait until "
        "it is healthy on this version, smoke-test an agent's MCP endpoint, wait until it is "
        "listed by the registry, then soak.",
    )
    activate.add_argument("--service", choices=("agent", "registry"), default="agent")
    activate.add_argument(
        "--env-file",
        metavar="PATH",
        help=f"the service's env file (default {CONFIG_DIR}/<service>.env)",
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
    activate.add_argument(
        "--smoke",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="smoke-test the agent's /mcp once it is ready (initialize, tools/list, write, read, "
        "list, info of a hidden file, removed again); default: on for --service agent, a "
        "registry has none",
    )
    activate.add_argument("--json", action="store_true", help="print the outcome as JSON")
    smoke = actions.add_parser(
        "smoke",
        help="smoke-test the local agent's MCP endpoint",
        description="Drive the local agent's /mcp with the official MCP client and its token: "
        "initialize, tools/list (every tool with its input schema) and, with BASE_DIRECTORY, "
        "write, read back, list and stat a file in a hidden .mcp-mesh-smoke-* folder, removed "
        "afterwards (run as root, or as a user who may remove the agent's files).",
    )
    smoke.add_argument(
        "--env-file", metavar="PATH", help=f"the agent's env file (default {ENV_FILES['agent']})"
    )
    smoke.add_argument(
        "--timeout", type=float, default=None, metavar="SECONDS",
        help="limit of the whole smoke (default 30)",
    )  # fmt: skip
    smoke.add_argument("--json", action="store_true", help="print the outcome as JSON")
    configure_analyse(
        actions.add_parser(
            "analyse",
            help="judge an agent (the canary) by its traffic against the old release's agents",
            description="Watch the canary's /metrics for a window and compare its server-error "
            "ratio and latency with the seed's thresholds and with the baseline agents; stop at "
            "once when a failure is conclusive. Exit 0: pass, 1: fail.",
        )
    )
    configure_summary(
        actions.add_parser(
            "summary",
            help="one row per host of a rollout, from the host cycles' results (JSON on stdin)",
        )
    )


def _check_seconds(flag: str, value: float, limit: float) -> None:
    if not 0 <= value <= limit:
        raise ConfigError([ConfigProblem(flag, f"must be 0 to {limit:g} seconds, got {value:g}")])


def _plan(args: argparse.Namespace) -> Plan:
    from mcp_mesh_sdk.envfile import read_env_file
    from mcp_mesh_sdk.release import Plan, release_dir_of_running_binary
    from mcp_mesh_sdk.smoke import SmokeTarget, local_url

    _check_seconds("--soak", args.soak, 3600)
    _check_seconds("--timeout", args.timeout, 3600)
    release_dir = (args.release_dir or release_dir_of_running_binary()).resolve()
    if release_dir.parent.name != "releases":
        raise ConfigError(
            [ConfigProblem("--release-dir", f"{release_dir} is not inside a releases directory")]
        )
    env = read_env_file(args.env_file or ENV_FILES[args.service])
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
            service="registry", state_dir=state_dir,
            url=local_url(registry.host, registry.port, tls=registry.tls.enabled),
            ca_file=registry.tls.ca_file, **common,
        )  # fmt: skip
    from mcp_mesh_sdk.config import load_agent_config

    agent = load_agent_config(env)
    url = local_url(agent.host, agent.port, tls=agent.tls.enabled)
    return Plan(
        service="agent",
        state_dir=args.state_dir or agent.state_dir,
        url=url,
        ca_file=agent.tls.ca_file,
        registry_url=agent.mesh_registry_url,
        registry_token=agent.registry_token,
        agent_name=agent.agent_name,
        smoke=args.smoke is not False,
        smoke_target=SmokeTarget.of_agent(agent, url),
        **common,
    )


def run(args: argparse.Namespace) -> int:
    if args.action == "smoke":
        return _run_smoke(args)
    if args.action == "analyse":
        return run_analyse(args)
    if args.action == "summary":
        return run_summary(args)
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
        smoked = ", smoke passed" if report.smoke else ""
        print(f"release {report.release} is current and healthy{smoked} ({took:.1f} s)")
    return 0


def _run_smoke(args: argparse.Namespace) -> int:
    from mcp_mesh_sdk.smoke import SMOKE_TIMEOUT, smoke_agent

    timeout = SMOKE_TIMEOUT if args.timeout is None else args.timeout
    if not 0 < timeout <= 3600:
        reason = f"must be over 0 and at most 3600 seconds, got {timeout:g}"
        raise ConfigError([ConfigProblem("--timeout", reason)])
    result = smoke_agent(args.env_file or ENV_FILES["agent"], timeout)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    elif result.passed:
        print(f"smoke passed: {', '.join(result.checks)} ({result.seconds:.2f} s)")
    if not result.passed:
        print(f"mcp-mesh-sdk release: smoke failed: {result.cause}", file=sys.stderr)
        return 1
    return 0
