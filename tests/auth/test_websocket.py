"""OAuth in the WebSocket transport's opening handshake."""

from __future__ import annotations

import trio

from opex_trio.auth import AuthorizationCode, HeadlessRedirect, MemoryTokenStore, OAuth, OAuthConfig
from opex_trio.mcp.client import McpClient
from opex_trio.testing.auth_server import open_auth_server
from opex_trio.testing.mcp_server import builtin_server
from opex_trio.testing.ws_server import McpWebSocketServer
from opex_trio.transports.websocket import WebSocketParameters, open_websocket_transport

TOKEN = "websocket-access-token-0123456789"


async def test_refused_handshake_is_authorized_and_retried() -> None:
    store = MemoryTokenStore()
    ws = McpWebSocketServer(builtin_server(), require_token=TOKEN)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(ws.serve)
            http_form = ws.url.replace("ws://", "http://", 1)
            async with open_auth_server(fixed_token=TOKEN, resource_url=http_form) as server:
                server.prm_url = f"{server.issuer}/prm"

                def params() -> WebSocketParameters:
                    config = OAuthConfig(
                        grant=AuthorizationCode(HeadlessRedirect()),
                        store=store,
                        resource_metadata_url=f"{server.issuer}/prm",
                    )
                    return WebSocketParameters(ws.url, auth=OAuth(config))

                first = params()
                async with McpClient(lambda: open_websocket_transport(first), name="ws") as client:
                    assert await client.list_tools()
                second = params()  # a reconnect: the stored token opens the handshake at once
                async with McpClient(lambda: open_websocket_transport(second), name="ws") as client:
                    assert await client.list_tools()
            nursery.cancel_scope.cancel()
    assert len(server.requests_to("/authorize")) == 1
    assert server.requests_to("/authorize")[0].params["resource"] == http_form
