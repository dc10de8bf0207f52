"""The MCP Mesh agent: file tools over MCP, health and metrics endpoints, registry membership.

Small modules with one job each:
- `paths` (confinement rules) and `tools` (the four file operations);
- `security` (events and blocking), `monitoring` (performance stats, alerts, system sample),
  `metrics` (Prometheus), `operations` (runs one tool call with all of those around it);
- `mcp_engine` (the MCP SDK wiring), `registry_client` (register, heartbeat, deregister);
- `lifecycle` (readiness, systemd notifications, background tasks), `service` (the agent as
  one object), `app` (the HTTP application) and `runner` (uvicorn, drain-first shutdown).
"""
