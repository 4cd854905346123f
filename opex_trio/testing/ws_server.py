"""A real WebSocket MCP server on loopback, for tests.

:class:`McpWebSocketServer` serves an :class:`~opex_trio.testing.mcp_server.McpTestServer`
with trio-websocket on ``127.0.0.1`` and a free port: one JSON-RPC message per
text frame, subprotocol ``mcp``. ``require_token`` rejects a handshake without
the right bearer token (HTTP 401); :meth:`McpWebSocketServer.close_all` closes
every connection with a given code, as a server going away would.
"""

from __future__ import annotations

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from .mcp_server import McpTestServer

__all__ = ["McpWebSocketServer"]


class McpWebSocketServer:
    """Serves ``mcp`` over WebSocket on 127.0.0.1 until cancelled."""

    def __init__(
        self,
        mcp: McpTestServer,
        *,
        port: int = 0,
        require_token: str | None = None,
        max_message_size: int = 64 * 1024 * 1024,
    ) -> None:
        self.mcp = mcp
        self.port = port
        self.require_token = require_token
        self.max_message_size = max_message_size
        self.connections: list[WebSocketConnection] = []
        self.subprotocols: list[str | None] = []
        self.request_headers: list[dict[str, str]] = []

    @property
    def url(self) -> str:
        """The ``ws://`` URL a client connects to."""
        return f"ws://127.0.0.1:{self.port}/mcp"

    async def serve(self, *, task_status: trio.TaskStatus[McpWebSocketServer]) -> None:
        """Listen and serve until cancelled; reports itself once listening."""
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                serve_websocket,
                self._handle,
                "127.0.0.1",
                self.port,
                None,
            )
            self.port = server.port
            task_status.started(self)

    async def close_all(self, code: int = 1001, reason: str = "going away") -> None:
        """Close every open connection with ``code``."""
        for ws in list(self.connections):
            await ws.aclose(code, reason)

    async def _handle(self, request: WebSocketRequest) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        self.request_headers.append(headers)
        if self.require_token is not None and (
            headers.get("authorization") != f"Bearer {self.require_token}"
        ):
            await request.reject(401, extra_headers=[(b"WWW-Authenticate", b"Bearer")])
            return
        subprotocol = "mcp" if "mcp" in request.proposed_subprotocols else None
        ws = await request.accept(subprotocol=subprotocol)
        self.subprotocols.append(ws.subprotocol)
        self.connections.append(ws)

        async def receive() -> bytes:
            message = await ws.get_message()
            return message.encode() if isinstance(message, str) else message

        async def send_text(data: bytes) -> None:
            await ws.send_message(data.decode())

        try:
            await self.mcp._serve(receive, send_text, (ConnectionClosed,))
        finally:
            self.connections.remove(ws)
            await ws.aclose()
