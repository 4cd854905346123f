"""Streamable HTTP names each message's method and target in headers, and mirrors declared arguments.

Against a real loopback server that records every request's headers.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, Literal

import pytest
import trio

from opex_trio.testing.http_server import McpHttpServer
from opex_trio.testing.mcp_server import ToolContext, builtin_server
from opex_trio.transports.http import HttpParameters
from tests.transports.test_http import client_for, posts

BOUND = 60


def echo_arguments(args: Mapping[str, Any], ctx: ToolContext) -> str:
    return json.dumps(dict(args), sort_keys=True)


def decoded(header: str) -> str:
    if header.startswith("=?base64?") and header.endswith("?="):
        return base64.b64decode(header[len("=?base64?") : -2]).decode("utf-8")
    return header


@pytest.mark.parametrize("response_mode", ["sse", "json"])
async def test_methods_targets_and_declared_arguments_travel_in_headers(
    response_mode: Literal["json", "sse"], caplog: pytest.LogCaptureFixture
) -> None:
    mcp = builtin_server()
    mcp.add_tool(
        "route",
        echo_arguments,
        input_schema={
            "type": "object",
            "properties": {
                "region": {"type": "string", "x-mcp-header": "Region"},
                "priority": {"type": "integer", "x-mcp-header": "Priority"},
                "verbose": {"type": "boolean", "x-mcp-header": "Verbose"},
                "query": {"type": "string"},
            },
        },
    )
    mcp.add_tool(
        "scored",
        echo_arguments,
        input_schema={
            "type": "object",
            "properties": {"score": {"type": "number", "x-mcp-header": "Score"}},
        },
    )
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(McpHttpServer(mcp, response_mode=response_mode).serve)
            async with client_for(HttpParameters(server.url, name="remote")) as client:
                names = [tool.name for tool in await client.list_tools()]
                assert "route" in names and "echo" in names
                # An invalid declaration leaves its tool out, with the reason logged.
                assert "scored" not in names
                assert "'scored'" in caplog.text and "'number'" in caplog.text
                arguments = {"region": "Hello, 世界", "priority": 42, "verbose": False}
                await client.call_tool("route", {**arguments, "query": "SELECT 1"})
                await client.call_tool("route", {"region": "us-west1", "verbose": None})
                await client.read_resource("test://hello")
            nursery.cancel_scope.cancel()
    for record in server.log:
        if record.method == "POST" and record.jsonrpc_method is not None:
            assert record.headers.get("mcp-method") == record.jsonrpc_method, record
    first, second = [r for r in posts(server, "tools/call") if r.headers["mcp-name"] == "route"]
    assert decoded(first.headers["mcp-param-region"]) == "Hello, 世界"
    assert first.headers["mcp-param-region"] != "Hello, 世界"  # not plain ASCII: Base64
    assert first.headers["mcp-param-priority"] == "42"
    assert first.headers["mcp-param-verbose"] == "false"
    assert "mcp-param-query" not in first.headers
    assert second.headers["mcp-param-region"] == "us-west1"
    assert "mcp-param-verbose" not in second.headers  # null: no header
    (read,) = posts(server, "resources/read")
    assert read.headers["mcp-name"] == "test://hello"


async def test_the_legacy_transport_sends_no_mcp_headers() -> None:
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(McpHttpServer(builtin_server(), legacy=True).serve)
            async with client_for(HttpParameters(server.url)) as client:
                await client.call_tool("echo", {"message": "x"})
            nursery.cancel_scope.cancel()
    legacy_posts = [r for r in server.log if r.method == "POST" and r.path.startswith("/messages")]
    assert legacy_posts
    assert not any("mcp-method" in r.headers for r in legacy_posts)
