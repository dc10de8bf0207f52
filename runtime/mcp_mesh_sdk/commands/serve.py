"""`mcp-mesh-sdk serve`: run the agent (what the systemd unit starts)."""

from __future__ import annotations

import argparse

from mcp_mesh_sdk.envfile import add_env_file_option

HELP = "run the MCP Mesh agent with the environment's configuration"


def configure(parser: argparse.ArgumentParser) -> None:
    add_env_file_option(parser)


def run(args: argparse.Namespace) -> int:
    from mcp_mesh_sdk.config import load_agent_config
    from mcp_mesh_sdk.envfile import environment_with
    from mcp_mesh_sdk.server import run as run_agent

    return run_agent(load_agent_config(environment_with(args.env_file)))
