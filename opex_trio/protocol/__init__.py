"""The sans-IO MCP protocol core.

JSON-RPC 2.0 messages, MCP types, versions and the client session state machine.

Bytes and dicts go in, events come out. Nothing here imports trio, httpx2 or
anything else that does IO; a test enforces it.
"""
