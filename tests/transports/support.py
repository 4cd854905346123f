"""Contract subjects: each transport connected to the built-in test server."""

from __future__ import annotations

import importlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import ModuleType
from typing import Any

import pytest
import trio

from opex_trio.mcp.client import McpClient
from opex_trio.testing.contract import ContractSubject
from opex_trio.testing.http_server import McpHttpServer
from opex_trio.testing.mcp_server import builtin_server
from opex_trio.testing.ws_server import McpWebSocketServer
from opex_trio.transports.base import Transport
from opex_trio.transports.http import HttpParameters, open_http_transport
from opex_trio.transports.memory import MemoryServerEnd, memory_pair
from opex_trio.transports.stdio import open_stdio_transport
from opex_trio.transports.websocket import WebSocketParameters, open_websocket_transport
from tests.mcp.support import test_server_params


def peers() -> ModuleType:
    """The test peers' locator (``tests/peers``), or a skip; a failure under OPEX_REQUIRE_PEERS=1."""
    for name in ("peers", "tests.peers"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    message = "the test peers locator (tests/peers) is not importable"
    if os.environ.get("OPEX_REQUIRE_PEERS", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(message)
    pytest.skip(message)


LIMIT = 10_000
OVERSIZE = 50_000

KINDS = (
    "stdio",
    "memory",
    "http-sse",
    "http-json",
    "http-stateless",
    "http-legacy",
    "websocket",
)


async def start_in_scope(
    nursery: trio.Nursery, serve: Callable[..., Awaitable[Any]]
) -> tuple[Any, trio.CancelScope]:
    """Start ``serve`` (a ``task_status`` function) in a cancel scope of its own."""
    scope = trio.CancelScope()

    async def run(*, task_status: trio.TaskStatus[Any]) -> None:
        with scope:
            await serve(task_status=task_status)

    return await nursery.start(run), scope


async def make_subject(kind: str, nursery: trio.Nursery) -> ContractSubject:
    if kind == "stdio":
        params = test_server_params(max_message_size=LIMIT, close_grace=0.5, term_grace=0.5)

        async def kill(client: McpClient) -> None:
            os.kill(client.transport.pid, signal.SIGKILL)  # type: ignore[union-attr]

        return ContractSubject("stdio", lambda: open_stdio_transport(params), kill, OVERSIZE)
    if kind == "memory":
        server = builtin_server()
        ends: list[MemoryServerEnd] = []

        @asynccontextmanager
        async def open_memory() -> AsyncIterator[Transport]:
            transport, end = memory_pair("memory", max_message_size=LIMIT)
            ends.append(end)
            nursery.start_soon(server.serve_memory, end)
            async with transport:
                yield transport

        async def close_ends(client: McpClient) -> None:
            for end in ends:
                await end.aclose()

        return ContractSubject("memory", open_memory, close_ends, OVERSIZE)
    if kind == "websocket":
        ws_server, ws_scope = await start_in_scope(
            nursery, McpWebSocketServer(builtin_server()).serve
        )
        ws_params = WebSocketParameters(
            ws_server.url, name="websocket", max_message_size=LIMIT, close_timeout=0.5
        )

        async def stop_ws(client: McpClient) -> None:
            ws_scope.cancel()

        return ContractSubject(
            "websocket",
            lambda: open_websocket_transport(ws_params),
            stop_ws,
            OVERSIZE,
            oversize_breaks_connection=True,
        )
    http_options: dict[str, dict[str, Any]] = {
        "http-sse": {},
        "http-json": {"response_mode": "json"},
        "http-stateless": {"stateful": False},
        "http-legacy": {"legacy": True},
    }
    options = http_options[kind]
    http_server, http_scope = await start_in_scope(
        nursery, McpHttpServer(builtin_server(), **options).serve
    )
    http_params = HttpParameters(http_server.url, name=kind, max_message_size=LIMIT)

    async def stop_http(client: McpClient) -> None:
        http_scope.cancel()

    def open_http() -> AbstractAsyncContextManager[Transport]:
        return open_http_transport(http_params)

    return ContractSubject(kind, open_http, stop_http, OVERSIZE)
