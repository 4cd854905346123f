"""MCP clients: one actor per server, the session manager and the tool registry."""
