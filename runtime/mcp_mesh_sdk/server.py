"""`python -m mcp_mesh_sdk.server`: run the agent with this process's environment.

A bad environment exits 78 (EX_CONFIG) with the same message `check-config` prints, never a
traceback. The MCP SDK, the slowest import by far, is loaded in a worker thread once the
listener is up (see `agent.service`), so it does not delay start-up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import TYPE_CHECKING

from mcp_mesh_sdk.cli import EXIT_CONFIG
from mcp_mesh_sdk.config import AgentConfig, load_agent_config
from mcp_mesh_sdk.errors import ConfigError

if TYPE_CHECKING:
    from mcp_mesh_sdk.agent.service import Agent


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
    watch_for_incidents(agent, config)
    return serve(config, agent)


def watch_for_incidents(agent: Agent, config: AgentConfig) -> None:
    """Every MCP_MESH_INCIDENT_INTERVAL, open incidents for the spec's thresholds crossed by
    the agent's own metrics and system health (kept in the state directory)."""
    from mcp_mesh_sdk.incidents import IncidentDetector, IncidentStore

    detector = IncidentDetector(IncidentStore(config.state_dir))

    async def check() -> None:
        stats, system = agent.performance_stats(), agent.system_health()
        await asyncio.to_thread(detector.check, stats, system)

    agent.add_periodic_task("incident-check", config.incident_interval, check)


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
