"""The MCP Mesh agent: file tools over MCP, health and metrics endpoints, registry membership.

Small modules with one job each: `paths` (confinement rules), `security` (events and
blocking), `monitoring` (performance stats, alerts, system snapshot), `metrics` (Prometheus),
`tools` (the file operations), `mcp_engine` (the MCP SDK wiring), `registry_client`,
`lifecycle` (readiness, systemd notifications, shutdown) and `app` (the HTTP application).
"""
