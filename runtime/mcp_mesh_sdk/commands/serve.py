"""`mcp-mesh-sdk serve`: run the agent (what the systemd unit starts)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from typing import NoReturn

from mcp_mesh_sdk.envfile import add_env_file_option

HELP = "run the MCP Mesh agent with the environment's configuration"


def configure(parser: argparse.ArgumentParser) -> None:
    add_env_file_option(parser)


def run(args: argparse.Namespace) -> int:
    from mcp_mesh_sdk.config import load_agent_config
    from mcp_mesh_sdk.envfile import environment_with
    from mcp_mesh_sdk.server import run as run_agent

    exit_without_teardown(run_agent(load_agent_config(environment_with(args.env_file))))


def exit_without_teardown(code: int) -> NoReturn:
    """Leave once the agent has stopped, without the interpreter's teardown.

    Tearing down the server stack's modules takes about 0.3 s, which every restart of a
    rolling upgrade waits for. What a normal exit waits for still happens first: threads
    still working (a file operation the graceful timeout cut off) finish, logs and
    standard streams are flushed.
    """
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
