"""IO drivers that move JSON-RPC messages between an MCP client and a server.

Every transport offers the same small interface (:class:`~opex_trio.transports.base.Transport`):
send a message, receive messages, close.
"""
