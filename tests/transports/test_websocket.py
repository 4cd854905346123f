"""The WebSocket transport against real loopback servers: handshake, auth, close codes, keepalive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request

from opex_trio.errors import ConfigError, TransportAuthError, TransportBrokenError
from opex_trio.mcp.client import McpClient
from opex_trio.testing.mcp_server import builtin_server
from opex_trio.testing.ws_server import McpWebSocketServer
from opex_trio.transports.base import Transport
from opex_trio.transports.websocket import WebSocketParameters, open_websocket_transport

BOUND = 60
TOKEN = "ws-secret-token"


def client_for(params: WebSocketParameters) -> McpClient:
    def factory() -> AbstractAsyncContextManager[Transport]:
        return open_websocket_transport(params)

    return McpClient(factory, name=params.label)


@asynccontextmanager
async def serving(**options: Any) -> AsyncIterator[McpWebSocketServer]:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(McpWebSocketServer(builtin_server(), **options).serve)
        yield server
        nursery.cancel_scope.cancel()


async def test_the_handshake_carries_the_subprotocol_token_and_headers() -> None:
    with trio.fail_after(BOUND):
        async with serving(require_token=TOKEN) as server:
            params = WebSocketParameters(
                server.url, name="ws", auth_token=TOKEN, headers={"X-Tenant": "acme"}
            )
            async with client_for(params) as client:
                assert client.transport.subprotocol == "mcp"  # type: ignore[union-attr]
                assert (await client.call_tool("echo", {"message": "frame"})).text == "frame"
            assert server.subprotocols == ["mcp"]
            (headers,) = server.request_headers
            assert headers["authorization"] == f"Bearer {TOKEN}"
            assert headers["x-tenant"] == "acme"


async def test_a_refused_handshake_is_an_auth_error() -> None:
    with trio.fail_after(BOUND):
        async with serving(require_token=TOKEN) as server:
            with pytest.raises(TransportAuthError) as info:
                async with client_for(WebSocketParameters(server.url, name="guarded")):
                    pass
    assert info.value.status == 401 and info.value.server == "guarded"


@pytest.mark.parametrize(
    ("code", "error", "words"),
    [
        (1008, TransportAuthError, "1008 (policy violation)"),
        (1001, TransportBrokenError, "1001 (going away)"),
        (4000, TransportBrokenError, "4000"),
    ],
)
async def test_close_codes_become_typed_errors(
    code: int, error: type[Exception], words: str
) -> None:
    with trio.fail_after(BOUND):
        async with (
            serving() as server,
            client_for(WebSocketParameters(server.url, name="closing")) as client,
        ):
            await client.ping()
            await server.close_all(code, "bye now")
            with pytest.raises(error) as info:
                await client.call_tool("echo", {"message": "after"})
    assert words in str(info.value) and "bye now" in str(info.value)
    assert "'closing'" in str(info.value)


async def test_a_refused_connection_names_the_server() -> None:
    async with serving() as server:
        url = server.url
    with trio.fail_after(BOUND), pytest.raises(TransportBrokenError, match="'nobody'"):
        async with client_for(WebSocketParameters(url, name="nobody")):
            pass


async def silent_server(*, task_status: trio.TaskStatus[int]) -> None:
    """Accepts the WebSocket handshake, then never reads again (so never answers a ping)."""

    async def handle(stream: trio.SocketStream) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        while True:
            ws.receive_data(await stream.receive_some(65536))
            for event in ws.events():
                if isinstance(event, Request):
                    await stream.send_all(ws.send(AcceptConnection(subprotocol="mcp")))
                    await trio.sleep_forever()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


async def test_a_server_that_stops_answering_pings_is_dropped() -> None:
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(silent_server)
            params = WebSocketParameters(
                f"ws://127.0.0.1:{port}/mcp",
                name="mute",
                ping_interval=0.05,
                ping_timeout=0.2,
                close_timeout=0.2,
            )
            async with open_websocket_transport(params) as transport:
                with pytest.raises(TransportBrokenError, match="did not answer a WebSocket ping"):
                    await transport.receive()
            nursery.cancel_scope.cancel()


def test_parameters_are_checked_and_secrets_hidden() -> None:
    with pytest.raises(ConfigError, match="ws:// or wss://"):
        WebSocketParameters("http://example.com/mcp")
    with pytest.raises(ConfigError, match="auth_token"):
        WebSocketParameters("ws://example.com/mcp", auth_token="")
    shown = repr(WebSocketParameters("ws://x/mcp", auth_token=TOKEN, headers={"K": "hidden"}))
    assert TOKEN not in shown and "hidden" not in shown
