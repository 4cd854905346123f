"""Stream resumption timing, in virtual time: httpx2's mock transport stands in for the network."""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx2
import pytest
import trio

from opex_trio.mcp.client import ClientOptions, McpClient
from opex_trio.protocol.versions import Era
from opex_trio.transports.base import Transport
from opex_trio.transports.http import HttpParameters, open_http_transport

URL = "http://mcp.test/mcp"


class ScriptedServer:
    """Answers like a server whose tool-call streams close after a priming event."""

    def __init__(self, retry_ms: int | None) -> None:
        self.retry_ms = retry_ms
        self.times: dict[str, float] = {}
        self.last_event_ids: list[str] = []
        self.pending: Any = None

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "GET":
            last = request.headers.get("last-event-id")
            if last is None:
                return httpx2.Response(405)
            self.times["resumed"] = trio.current_time()
            self.last_event_ids.append(last)
            answer = {"jsonrpc": "2.0", "id": self.pending, "result": {"content": []}}
            body = f"id: e2\ndata: {json.dumps(answer)}\n\n"
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, text=body)
        if request.method == "DELETE":
            return httpx2.Response(200)
        message = json.loads(request.content)
        if "id" not in message:
            return httpx2.Response(202)
        if message["method"] == "initialize":
            result = {
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "scripted", "version": "1"},
            }
            return httpx2.Response(
                200,
                headers={"mcp-session-id": "s1"},
                json={"jsonrpc": "2.0", "id": message["id"], "result": result},
            )
        self.pending = message["id"]
        self.times["closed"] = trio.current_time()
        retry = f"retry: {self.retry_ms}\n" if self.retry_ms is not None else ""
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, text=f"id: e1\n{retry}data: \n\n"
        )


async def call_through(server: ScriptedServer, **params: Any) -> None:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(server.handle))

    def factory() -> AbstractAsyncContextManager[Transport]:
        return open_http_transport(HttpParameters(URL, http_client=http, **params))

    options = ClientOptions(era=Era.LEGACY)  # the script speaks the legacy era
    async with http, McpClient(factory, name="scripted", options=options) as client:
        await client.call_tool("slow")


@pytest.mark.parametrize(("retry_ms", "delay"), [(2500, 2.5), (40, 0.04), (None, 1.0)])
async def test_a_closed_stream_is_resumed_after_the_retry_delay(
    autojump_clock: trio.testing.MockClock, retry_ms: int | None, delay: float
) -> None:
    server = ScriptedServer(retry_ms)
    with trio.fail_after(60):
        await call_through(server)
    assert server.times["resumed"] - server.times["closed"] == pytest.approx(delay, abs=1e-9)
    assert server.last_event_ids == ["e1"]


async def test_the_default_delay_is_configurable(autojump_clock: trio.testing.MockClock) -> None:
    server = ScriptedServer(None)
    with trio.fail_after(60):
        await call_through(server, reconnect_delay=7.0)
    assert server.times["resumed"] - server.times["closed"] == pytest.approx(7.0, abs=1e-9)
