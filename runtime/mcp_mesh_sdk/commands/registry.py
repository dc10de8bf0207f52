"""`mcp-mesh-sdk registry`: serve the mesh registry until SIGTERM."""

from __future__ import annotations

import argparse
import os

from mcp_mesh_sdk.envfile import read_env_file

HELP = "run the mesh registry (agents register and heartbeat here)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--env-file",
        metavar="PATH",
        help="read variables from this file too (the process environment wins)",
    )


def run(args: argparse.Namespace) -> int:
    from mcp_mesh_sdk.registry.config import load_registry_config

    env = dict(read_env_file(args.env_file)) if args.env_file else {}
    env.update(os.environ)
    config = load_registry_config(env)
    from mcp_mesh_sdk.registry.server import serve  # the server stack loads only now

    return serve(config)
