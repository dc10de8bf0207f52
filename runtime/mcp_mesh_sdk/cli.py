"""The `mcp-mesh-sdk` command line.

Each subcommand lives in its own module under `mcp_mesh_sdk.commands` and is imported only
when it runs, so `--version` and the ops commands start fast and do not load the server stack.
A command module exposes `HELP: str`, `configure(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from mcp_mesh_sdk import __version__
from mcp_mesh_sdk.errors import ConfigError, OpsError

# subcommand name -> module under mcp_mesh_sdk.commands
COMMANDS: dict[str, str] = {
    "serve": "serve",
    "registry": "registry",
    "check-config": "check_config",
    "diagnose": "diagnose",
    "incidents": "incidents",
    "backup": "backup",
    "migrate": "migrate",
    "lb": "lb",
    "release": "release",
    "security": "security",
}

EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h: systemd shows it as a configuration error


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"mcp_mesh_sdk.commands.{COMMANDS[name]}")


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcp-mesh-sdk", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mcp-mesh-sdk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = next((arg for arg in argv if not arg.startswith("-")), None)
    for name in COMMANDS:
        if wanted in COMMANDS and name != wanted:
            sub.add_parser(name)  # listed, not loaded
            continue
        try:
            module = _load(name)
        except ModuleNotFoundError as exc:  # a command whose module is not built yet
            if exc.name and exc.name.startswith("mcp_mesh_sdk.commands"):
                continue
            raise
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    run = getattr(args, "_run", None)
    if run is None:
        parser.print_help()
        return 2
    try:
        return int(run(args))
    except ConfigError as exc:
        print(f"mcp-mesh-sdk {args.command}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OpsError as exc:
        print(f"mcp-mesh-sdk {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"mcp-mesh-sdk {args.command}: interrupted", file=sys.stderr)
        return 130
