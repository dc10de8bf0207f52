"""`python -m mcp_mesh_sdk.server`: run the agent with this process's environment.

A bad environment exits 78 (EX_CONFIG) with the same message `check-config` prints, never a
traceback. The MCP SDK is the slowest import by far, so it starts loading in a background
thread before anything else; the listener is bound and answering meanwhile.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading

from mcp_mesh_sdk.config import AgentConfig, load_agent_config
from mcp_mesh_sdk.errors import ConfigError

EXIT_CONFIG = 78
_SLOW_IMPORTS = ("mcp.server.mcpserver", "mcp.server.streamable_http_manager")


def prefetch_slow_imports() -> None:
    """Start importing the MCP SDK now; `build_engine` finds it loaded (or waits for it)."""

    def load() -> None:
        for name in _SLOW_IMPORTS:
            try:
                importlib.import_module(name)
            except Exception:  # the real import in build_engine reports it properly
                return

    threading.Thread(target=load, name="prefetch-mcp", daemon=True).start()


def run(config: AgentConfig) -> int:
    """Serve until stopped; returns the process exit code."""
    prefetch_slow_imports()
    from mcp_mesh_sdk.logs import setup_logging

    setup_logging(config.log_level, config.log_format)
    if config.log_level != "DEBUG":  # the SDK logs every stateless request at INFO
        logging.getLogger("mcp").setLevel(logging.WARNING)
    log = logging.getLogger("mcp_mesh_sdk.agent")
    for warning in config.warnings:
        log.warning("configuration: %s", warning)
    from mcp_mesh_sdk.agent.runner import serve

    return serve(config)


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
