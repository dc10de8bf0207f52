"""`python -m mcp_mesh_sdk.server`: run the agent with this process's environment.

A bad environment, or a port already taken, exits 78 (EX_CONFIG) with the same message
`check-config` prints, never a traceback. The MCP SDK, the slowest import by far, is loaded in
a worker thread once the listener is up (see `agent.service`), so it does not delay start-up.
The server itself is the skeleton the registry shares (`serving`); the agent passes its app,
its readiness and its drain: /ready turns 503 and the agent leaves the registry while the
listener stays open for MCP_MESH_DRAIN_DELAY.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import TYPE_CHECKING

from mcp_mesh_sdk.cli import EXIT_CONFIG
from mcp_mesh_sdk.config import AgentConfig, load_agent_config
from mcp_mesh_sdk.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from mcp_mesh_sdk.agent.service import Agent
    from mcp_mesh_sdk.serving.server import Hooks


def run(config: AgentConfig) -> int:
    """Serve until stopped; returns the process exit code."""
    from mcp_mesh_sdk.logs import setup_audit_log, setup_logging

    setup_logging(config.log_level, config.log_format)
    setup_audit_log(config.audit_log)
    if config.log_level != "DEBUG":  # the SDK logs every stateless request at INFO
        logging.getLogger("mcp").setLevel(logging.WARNING)
    log = logging.getLogger("mcp_mesh_sdk.agent")
    for warning in config.warnings:
        log.warning("configuration: %s", warning)
    from mcp_mesh_sdk.agent.service import Agent

    agent = Agent(config)
    watch_for_incidents(agent, config)
    return serve(config, agent)


def serve(config: AgentConfig, agent: Agent) -> int:
    """Run the agent until it is stopped; the exit code for the process."""
    from mcp_mesh_sdk.serving.listener import ListenError, bind_listener

    try:
        listener = bind_listener(config.host, config.port)
    except ListenError as exc:
        raise ConfigError([ConfigProblem("MCP_MESH_PORT", str(exc))]) from exc
    from mcp_mesh_sdk.agent.app import build_app
    from mcp_mesh_sdk.serving.server import ServiceServer
    from mcp_mesh_sdk.serving.tls import TlsError

    try:
        server = ServiceServer(
            build_app(agent),
            agent_hooks(agent),
            graceful_timeout=config.graceful_timeout,
            trusted_proxies=config.trusted_proxies,
            limits=config.connection_limits,
            tls=config.tls,
        )
    except TlsError as exc:
        listener.close()
        raise ConfigError([ConfigProblem("MCP_MESH_TLS_CERT_FILE", str(exc))]) from exc

    def exit_now(code: int) -> None:
        agent.exit_code = code
        server.should_exit = True

    agent.request_exit = exit_now
    server.serve_on(listener)
    return agent.exit_code


def agent_hooks(agent: Agent) -> Hooks:
    """What the agent's serving adds to the skeleton: its readiness and its drain."""
    from mcp_mesh_sdk.serving.server import Hooks

    lifecycle = agent.lifecycle
    return Hooks(
        systemd=lifecycle.systemd,
        drain_delay=agent.config.drain_delay,
        drain_status="draining: /ready answers 503",
        on_listening=lifecycle.mark_listening,
        on_drain=lifecycle.begin_drain,
        while_draining=agent.leave_registry,
    )


def watch_for_incidents(agent: Agent, config: AgentConfig) -> None:
    """Every MCP_MESH_INCIDENT_INTERVAL, open incidents for the spec's thresholds crossed by
    the agent's own metrics and system health, and for its own TLS certificate near its expiry
    (as `diagnose` finds it), kept in the state directory."""
    from mcp_mesh_sdk.incidents import IncidentDetector, IncidentStore

    detector = IncidentDetector(IncidentStore(config.state_dir))
    certificate = config.tls.cert_file

    def check_certificate() -> None:
        from mcp_mesh_sdk.certificates import CertificateError, expiry_incident, read_expiry

        assert certificate is not None
        try:
            incident = expiry_incident(read_expiry(certificate))
        except CertificateError:  # the listener's reload logs what is wrong with the file
            return
        if incident is not None:
            detector.open([incident])

    async def check() -> None:
        stats, system = agent.performance_stats(), agent.system_health()
        await asyncio.to_thread(detector.check, stats, system)
        if certificate is not None:
            await asyncio.to_thread(check_certificate)

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
