"""`python -m mcp_mesh_sdk.server`: run the agent with this process's environment.

A bad environment exits 78 (EX_CONFIG) with the same message `check-config` prints, never a
traceback. The MCP SDK, the slowest import by far, is loaded in a worker thread once the
listener is up (see `agent.service`), so it does not delay start-up.
"""

from __future__ import annotations

import logging
import os
import sys

from mcp_mesh_sdk.cli import EXIT_CONFIG
from mcp_mesh_sdk.config import AgentConfig, load_agent_config
from mcp_mesh_sdk.errors import ConfigError


def run(config: AgentConfig) -> int:
    """Serve until stopped; returns the process exit code."""
    from mcp_mesh_sdk.logs import setup_logging

    setup_logging(config.log_level, config.log_format)
    if config.log_level != "DEBUG":  # the SDK logs every stateless request at INFO
        logging.getLogger("mcp").setLevel(logging.WARNING)
    log = logging.getLogger("mcp_mesh_sdk.agent")
    for warning in config.warnings:
        log.warning("configuration: %s", warning)
    from mcp_mesh_sdk.agent.runner import serve
    from mcp_mesh_sdk.agent.service import Agent

    agent = Agent(config)
    # Periodic jobs (e.g. an incident detector reading agent.performance_stats() and
    # agent.system_health()) are added here: agent.add_periodic_task(name, seconds, job).
    return serve(config, agent)


def main() -> int:
    try:
        config = load_agent_config(os.environ)
        return run(config)
    except ConfigError as exc:
        print(f"mcp-mesh-sdk serve: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
