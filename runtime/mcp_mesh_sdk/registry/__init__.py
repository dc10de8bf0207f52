"""The mesh registry: where agents register, heartbeat and are found (`mcp-mesh-sdk registry`)."""
