"""MCP Mesh SDK: the agent, the registry and the ops commands the playbooks drive."""

__version__ = "1.0.0"
