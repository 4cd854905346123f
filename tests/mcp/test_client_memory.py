"""The MCP actor against the test server in process, in virtual time: deadlines exactly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from opex_trio.errors import RequestTimeoutError
from opex_trio.mcp.client import ClientOptions, McpClient
from opex_trio.testing.mcp_server import McpTestServer, builtin_server


@asynccontextmanager
async def connected(
    server: McpTestServer, options: ClientOptions | None = None
) -> AsyncIterator[McpClient]:
    async with trio.open_nursery() as nursery:
        async with McpClient(server.in_process(nursery), name="mem", options=options) as client:
            yield client
        nursery.cancel_scope.cancel()


async def test_each_request_times_out_at_its_own_deadline(autojump_clock: Any) -> None:
    server = builtin_server()
    async with connected(server) as client:
        start = trio.current_time()
        ended: dict[float, float] = {}

        async def slow(timeout: float) -> None:
            with pytest.raises(RequestTimeoutError) as info:
                await client.call_tool("sleep", {"seconds": 100}, timeout=timeout)
            assert info.value.timeout == timeout
            ended[timeout] = trio.current_time() - start

        async with trio.open_nursery() as nursery:
            for timeout in (5, 2, 8, 2.5):
                nursery.start_soon(slow, timeout)
        assert ended == {5: 5, 2: 2, 8: 8, 2.5: 2.5}
        assert client.pending_count == 0
        # An answered request never times out later; its answer also shows the
        # server has read every cancellation sent before it.
        assert (await client.call_tool("echo", {"message": "x"}, timeout=1)).text == "x"
        assert len(server.cancelled) == 4
        await trio.sleep(10)
        assert len(server.cancelled) == 4


async def test_the_default_deadline_and_none(autojump_clock: Any) -> None:
    async with connected(builtin_server(), ClientOptions(request_timeout=3)) as client:
        start = trio.current_time()
        with pytest.raises(RequestTimeoutError, match="within 3 s"):
            await client.call_tool("hang")
        assert trio.current_time() - start == 3
        with trio.move_on_after(50) as scope:
            await client.call_tool("hang", timeout=None)
        assert scope.cancelled_caught


async def test_deadlines_of_answered_requests_do_not_pile_up(autojump_clock: Any) -> None:
    async with connected(builtin_server()) as client:
        for i in range(2000):
            await client.call_tool("echo", {"message": str(i)}, timeout=60)
        assert len(client._deadlines._heap) <= 256
