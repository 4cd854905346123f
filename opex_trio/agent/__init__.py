"""The tool-calling chat loop, its hooks, and MCP-to-OpenAI tool conversion."""
