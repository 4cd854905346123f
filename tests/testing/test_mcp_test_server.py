"""The in-process test server answers a tool that breaks as real servers do."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import trio

from opex_trio.mcp.client import McpClient
from opex_trio.testing.mcp_server import McpTestServer, ToolContext

BOUND = 60


async def test_a_tool_that_raises_is_an_error_result_and_the_server_serves_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = McpTestServer()

    @server.tool()
    def divide(arguments: Mapping[str, Any], ctx: ToolContext) -> str:
        """Divide a by b."""
        return str(arguments["a"] / arguments["b"])

    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            async with McpClient(server.in_process(nursery), name="mem") as client:
                broken = await client.call_tool("divide", {"a": 1, "b": 0})
                assert broken.is_error
                assert "ZeroDivisionError" in broken.text
                assert (await client.call_tool("divide", {"a": 6, "b": 3})).text == "2.0"
            nursery.cancel_scope.cancel()
    assert any("ZeroDivisionError" in r.getMessage() for r in caplog.records)
