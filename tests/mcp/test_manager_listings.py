"""The session manager caches each server's resources, resource templates and prompts.

Against the in-process test server, whose requests a test can count and
whose lists it changes, and against ``server-everything`` over stdio.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio

from opex_trio.errors import TransportBrokenError
from opex_trio.mcp.manager import ServerOptions, SessionManager
from opex_trio.supervision import RestartPolicy
from opex_trio.testing.mcp_server import McpTestServer, builtin_server
from tests.mcp.support import BOUND
from tests.transports.support import peers

FAST = RestartPolicy(backoff_initial=0.05, backoff_max=0.2, jitter=0, max_restarts=3, within=30)


def options() -> ServerOptions:
    return ServerOptions(restart=FAST, health=None)


def requests(server: McpTestServer, method: str) -> int:
    return sum(1 for r in server.requests if r.method == method)


async def wait_for(condition: Callable[[], bool]) -> None:
    """Wait until ``condition`` holds (the caller's ``fail_after`` bounds the wait)."""
    while not condition():
        await trio.sleep(0.01)


def add_resource(server: McpTestServer, uri: str, name: str) -> None:
    server.resources[uri] = {
        "resource": {"uri": uri, "name": name},
        "contents": {"uri": uri, "text": name},
    }


def add_prompt(server: McpTestServer, name: str) -> None:
    server.prompts[name] = {
        "prompt": {"name": name},
        "render": lambda args: [{"role": "user", "content": {"type": "text", "text": name}}],
    }


async def test_listings_are_loaded_with_the_tools_and_served_without_a_round_trip() -> None:
    server = builtin_server()
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery, SessionManager(options=options()) as mcp:
            sid = await mcp.add_server(server.in_process(nursery), name="local", wait=True)
            # Listed just after the server is ready, so its tools are not held up.
            await wait_for(lambda: bool(mcp.resources(sid) and mcp.prompts(sid)))
            listed = (requests(server, "resources/list"), requests(server, "prompts/list"))
            assert listed == (1, 1)
            for _ in range(3):
                assert [r.uri for r in mcp.resources(sid)] == ["test://hello"]
                assert [p.name for p in mcp.prompts(sid)] == ["greet"]
                assert mcp.resource_templates(sid) == ()
            assert (requests(server, "resources/list"), requests(server, "prompts/list")) == listed
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("kind", ["resources", "prompts"])
async def test_list_changed_reloads_that_listing_only(kind: str) -> None:
    server = builtin_server()
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery, SessionManager(options=options()) as mcp:
            sid = await mcp.add_server(server.in_process(nursery), name="local", wait=True)
            await wait_for(lambda: bool(mcp.resources(sid) and mcp.prompts(sid)))
            other = "prompts" if kind == "resources" else "resources"
            before = {m: requests(server, f"{m}/list") for m in ("tools", other)}
            add_resource(server, "test://new", "new")
            add_prompt(server, "new")
            await server.notify_all(f"notifications/{kind}/list_changed")
            if kind == "resources":
                await wait_for(lambda: "test://new" in [r.uri for r in mcp.resources(sid)])
                assert [p.name for p in mcp.prompts(sid)] == ["greet"]
            else:
                await wait_for(lambda: "new" in [p.name for p in mcp.prompts(sid)])
                assert [r.uri for r in mcp.resources(sid)] == ["test://hello"]
            # Neither the tools nor the other listing were asked for again.
            assert {m: requests(server, f"{m}/list") for m in ("tools", other)} == before
            nursery.cancel_scope.cancel()


async def test_listings_are_kept_while_a_server_restarts_and_reloaded_after() -> None:
    server = builtin_server()
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery, SessionManager(options=options()) as mcp:
            sid = await mcp.add_server(server.in_process(nursery), name="local", wait=True)
            await wait_for(lambda: bool(mcp.resources(sid)))
            client = mcp.client(sid)
            # Changed without a notification: only a new connection finds out.
            add_resource(server, "test://after", "after")
            add_prompt(server, "after")
            client.abort(TransportBrokenError("the connection broke"))
            await wait_for(lambda: mcp.status(sid).state != "ready")
            # Kept while the server restarts, as its tools are.
            assert [r.uri for r in mcp.resources(sid)] == ["test://hello"]
            await mcp.wait_ready(sid, timeout=BOUND)
            assert mcp.status(sid).restarts == 1
            await wait_for(lambda: len(mcp.resources(sid)) == 2)
            assert {r.uri for r in mcp.resources(sid)} == {"test://hello", "test://after"}
            assert {p.name for p in mcp.prompts(sid)} == {"greet", "after"}
            nursery.cancel_scope.cancel()


async def test_a_server_without_resources_or_prompts_is_not_asked_for_them() -> None:
    capabilities: dict[str, Any] = {"tools": {"listChanged": True}}
    server = McpTestServer(capabilities=capabilities)
    server.add_tool("echo", lambda args, ctx: "echo")
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery, SessionManager(options=options()) as mcp:
            sid = await mcp.add_server(server.in_process(nursery), name="tools-only", wait=True)
            await mcp.refresh_listings(sid)
            assert (mcp.resources(sid), mcp.resource_templates(sid), mcp.prompts(sid)) == (
                (),
                (),
                (),
            )
            assert requests(server, "resources/list") == requests(server, "prompts/list") == 0
            nursery.cancel_scope.cancel()


async def test_a_listing_the_server_refuses_keeps_the_server_ready(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = builtin_server()
    # Says it has prompts, but cannot list them.
    server.prompts["broken"] = {"prompt": "not an object", "render": lambda args: []}
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery, SessionManager(options=options()) as mcp:
            sid = await mcp.add_server(server.in_process(nursery), name="local", wait=True)
            await wait_for(
                lambda: any("listing its prompts failed" in r.getMessage() for r in caplog.records)
            )
            assert mcp.status(sid).state == "ready"
            assert mcp.prompts(sid) == ()
            assert [r.uri for r in mcp.resources(sid)] == ["test://hello"]
            nursery.cancel_scope.cancel()


@pytest.mark.peers
async def test_server_everything_listings_match_what_it_lists() -> None:
    argv = peers().everything_stdio_command()
    with trio.fail_after(120):
        async with SessionManager(options=options()) as mcp:
            sid = await mcp.add_server(
                {"command": argv[0], "args": argv[1:]}, name="everything", wait=True, timeout=120
            )
            client = mcp.client(sid)
            await wait_for(lambda: bool(mcp.resources(sid) and mcp.prompts(sid)))
            assert mcp.resources(sid) == tuple(await client.list_resources())
            assert mcp.resource_templates(sid) == tuple(await client.list_resource_templates())
            assert mcp.prompts(sid) == tuple(await client.list_prompts())
            # A tool that registers a resource for the session: the server says
            # the list changed, and the cache follows without being asked.
            before = len(mcp.resources(sid))
            await mcp.call_tool(
                sid,
                "gzip-file-as-resource",
                {"name": "note.txt.gz", "data": "data:text/plain;base64,aGVsbG8="},
            )
            await wait_for(lambda: any("note.txt.gz" in r.uri for r in mcp.resources(sid)))
            assert len(mcp.resources(sid)) == before + 1
