"""Roots: file:// only, and changes told to every server that was given them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from opex_trio.errors import ConfigError, UsageError
from opex_trio.mcp._options import checked_roots
from opex_trio.mcp.client import ClientOptions, McpClient
from opex_trio.mcp.manager import ServerOptions, SessionManager
from opex_trio.protocol.types import Root
from opex_trio.testing.mcp_server import McpTestServer, builtin_server
from tests.mcp.support import BOUND
from tests.mcp.test_real_servers import client_for


@asynccontextmanager
async def connected(
    server: McpTestServer, options: ClientOptions | None = None
) -> AsyncIterator[McpClient]:
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            async with McpClient(server.in_process(nursery), name="mem", options=options) as client:
                yield client
            nursery.cancel_scope.cancel()


def changes(server: McpTestServer) -> int:
    return sum(n.method == "notifications/roots/list_changed" for n in server.notifications)


def test_only_file_uris_are_roots() -> None:
    assert ClientOptions(roots=[Root("file:///srv"), {"uri": "file:///tmp"}]).roots
    # A plain URI string is a root too; the list sent is the protocol's shape.
    assert checked_roots(["file:///srv/x"]) == [{"uri": "file:///srv/x"}]
    for bad in ([{"uri": "https://example.com"}], [{"name": "no uri"}], ["https://x"], "file:///x"):
        with pytest.raises(ConfigError, match="root"):
            ClientOptions(roots=bad)
    with pytest.raises(ConfigError, match="file://"):
        SessionManager(roots=[{"uri": "s3://bucket"}])


async def test_a_provider_with_a_bad_root_answers_an_error() -> None:
    async def roots() -> list[dict[str, Any]]:
        return [{"uri": "http://not-a-file"}]

    async with connected(builtin_server(), ClientOptions(roots=roots)) as client:
        answer = await client.call_tool("roots")
        assert answer.is_error and "file://" in answer.text


async def test_set_roots_tells_the_server() -> None:
    server = builtin_server()
    async with connected(server, ClientOptions(roots=[])) as client:
        assert json.loads((await client.call_tool("roots")).text) == []
        await client.set_roots([{"uri": "file:///work", "name": "work"}])
        # The server reads in order: by this answer it has the notification.
        assert json.loads((await client.call_tool("roots")).text) == [
            {"uri": "file:///work", "name": "work"}
        ]
        assert changes(server) == 1
        with pytest.raises(ConfigError):
            await client.set_roots([{"uri": "ftp://x"}])
        assert changes(server) == 1
    async with connected(builtin_server()) as bare:
        with pytest.raises(UsageError, match="roots"):
            await bare.set_roots([{"uri": "file:///x"}])


async def test_the_manager_sets_roots_for_all_its_servers() -> None:
    a, b, own = builtin_server(), builtin_server(), builtin_server()
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery, SessionManager(roots=[]) as mcp:
            plain = ServerOptions(health=None)
            await mcp.add_server(a.in_process(nursery), name="a", options=plain, wait=True)
            await mcp.add_server(b.in_process(nursery), name="b", options=plain, wait=True)
            mine = ServerOptions(health=None, client=ClientOptions(roots=[{"uri": "file:///own"}]))
            await mcp.add_server(own.in_process(nursery), name="own", options=mine, wait=True)
            await mcp.set_roots([Root("file:///project", name="project")])
            for sid, server in (("a", a), ("b", b)):
                listed = json.loads((await mcp.call_tool(sid, "roots")).text)
                assert listed == [{"uri": "file:///project", "name": "project"}]
                assert changes(server) == 1
            assert json.loads((await mcp.call_tool("own", "roots")).text) == [
                {"uri": "file:///own"}
            ]
            assert changes(own) == 0
            nursery.cancel_scope.cancel()
    async with SessionManager() as bare:
        with pytest.raises(UsageError, match="roots"):
            await bare.set_roots([])


async def test_server_everything_asks_again_after_a_change(
    everything_stdio_command: list[str],
) -> None:
    current: list[dict[str, Any]] = [{"uri": "file:///one"}]
    asked: list[int] = []
    got_two = trio.Event()

    async def roots() -> list[dict[str, Any]]:
        asked.append(len(current))
        if len(current) == 2:
            got_two.set()
        return list(current)

    with trio.fail_after(BOUND):
        options = ClientOptions(roots=roots)
        async with client_for(everything_stdio_command, "everything", options) as client:
            await client.call_tool("get-roots-list")  # it has fetched them at least once
            current = [{"uri": "file:///one"}, {"uri": "file:///two"}]
            await client.set_roots(roots)
            await got_two.wait()
            listed = await client.call_tool("get-roots-list")
    assert asked[0] == 1 and asked[-1] == 2
    assert "file:///two" in listed.text
