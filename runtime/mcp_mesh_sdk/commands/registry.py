"""`mcp-mesh-sdk registry`: serve the mesh registry until SIGTERM."""

from __future__ import annotations

import argparse

from mcp_mesh_sdk.envfile import add_env_file_option, environment_with

HELP = "run the mesh registry (agents register and heartbeat here)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_env_file_option(parser)


def run(args: argparse.Namespace) -> int:
    from mcp_mesh_sdk.registry.config import load_registry_config

    config = load_registry_config(environment_with(args.env_file))
    from mcp_mesh_sdk.registry.server import serve  # the server stack loads only now

    return serve(config)
