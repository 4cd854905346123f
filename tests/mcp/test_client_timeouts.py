"""Deadlines of every request, and deadlines that progress restarts, in virtual time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from opex_trio.errors import RequestTimeoutError
from opex_trio.mcp.client import ClientOptions, McpClient
from opex_trio.protocol.types import ProgressParams
from opex_trio.testing.mcp_server import McpTestServer, builtin_server
from tests.mcp.support import long_job_server


@asynccontextmanager
async def connected(
    server: McpTestServer, options: ClientOptions | None = None
) -> AsyncIterator[McpClient]:
    async with trio.open_nursery() as nursery:
        async with McpClient(server.in_process(nursery), name="mem", options=options) as client:
            yield client
        nursery.cancel_scope.cancel()


async def test_progress_restarts_the_idle_deadline(autojump_clock: Any) -> None:
    async with connected(long_job_server()) as client:
        start = trio.current_time()
        # 60 s of work with progress every second, under a 5 s idle deadline.
        result = await client.call_tool(
            "long_job", {"steps": 60, "every": 1}, timeout=5, reset_on_progress=True
        )
        assert result.text == "finished"
        assert trio.current_time() - start == 60
        # Without the reset, the same call ends at its deadline.
        start = trio.current_time()
        with pytest.raises(RequestTimeoutError, match="within 5 s") as info:
            await client.call_tool("long_job", {"steps": 60, "every": 1}, timeout=5)
        assert info.value.timeout == 5
        assert trio.current_time() - start == 5


async def test_the_idle_deadline_still_fires_between_progress(autojump_clock: Any) -> None:
    async with connected(long_job_server()) as client:
        seen: list[float] = []
        start = trio.current_time()
        with pytest.raises(RequestTimeoutError, match="no answer or progress") as info:
            await client.call_tool(
                "long_job",
                {"steps": 3, "every": 4},
                timeout=3,
                reset_on_progress=True,
                progress=lambda p: seen.append(p.progress),
            )
        assert info.value.timeout == 3
        assert trio.current_time() - start == 3
        assert seen == []
        # Progress every 4 s under an idle deadline of 5 s: it gets through.
        result = await client.call_tool(
            "long_job",
            {"steps": 3, "every": 4},
            timeout=5,
            reset_on_progress=True,
            progress=lambda p: seen.append(p.progress),
        )
        assert result.text == "finished"
        assert seen == [1, 2, 3]
        assert client.pending_count == 0


async def test_the_maximum_total_bounds_a_call_that_keeps_reporting(autojump_clock: Any) -> None:
    server = long_job_server()
    async with connected(server) as client:
        start = trio.current_time()
        with pytest.raises(RequestTimeoutError, match="maximum total of 20 s") as info:
            await client.call_tool(
                "long_job",
                {"steps": 100, "every": 1},
                timeout=5,
                reset_on_progress=True,
                max_total_timeout=20,
            )
        assert info.value.timeout == 20
        assert trio.current_time() - start == 20
        # The server was told, as for any deadline.
        assert (await client.call_tool("echo", {"message": "x"})).text == "x"
        assert len(server.cancelled) == 1


async def test_reset_on_progress_as_the_client_option(autojump_clock: Any) -> None:
    options = ClientOptions(request_timeout=2, reset_on_progress=True, max_total_timeout=30)
    async with connected(long_job_server(), options) as client:
        start = trio.current_time()
        result = await client.call_tool("long_job", {"steps": 10, "every": 1.5})
        assert result.text == "finished"
        assert trio.current_time() - start == 15
        with pytest.raises(RequestTimeoutError, match="maximum total of 30 s"):
            await client.call_tool("long_job", {"steps": 100, "every": 1})
        assert trio.current_time() - start == 45
        # A call can still opt out.
        with pytest.raises(RequestTimeoutError, match="within 2 s"):
            await client.call_tool("long_job", {"steps": 10, "every": 1}, reset_on_progress=False)
        assert trio.current_time() - start == 47


async def test_many_progress_reports_do_not_grow_the_heap(autojump_clock: Any) -> None:
    async with connected(long_job_server()) as client:
        reports: list[ProgressParams] = []
        await client.call_tool(
            "long_job",
            {"steps": 3000, "every": 0.001},
            timeout=1,
            reset_on_progress=True,
            progress=reports.append,
        )
        assert len(reports) == 3000
        assert len(client._deadlines._heap) <= 256
        assert client._deadlines._latest == {}


async def test_every_request_method_takes_a_timeout(autojump_clock: Any) -> None:
    server = builtin_server()
    server.prompts["p"] = {"prompt": {"name": "p"}, "render": lambda a: []}
    server.resources["mem://r"] = {
        "resource": {"uri": "mem://r", "name": "r"},
        "contents": {"uri": "mem://r", "text": "hi"},
    }
    stalled = trio.Event()
    original = server.dispatch

    async def stalling(request: Any, conn: Any) -> Any:
        if request.method != "initialize" and not stalled.is_set():
            await trio.sleep_forever()
        return await original(request, conn)

    server.dispatch = stalling  # type: ignore[method-assign]
    calls: dict[str, Callable[[McpClient], Awaitable[object]]] = {
        "list_tools": lambda c: c.list_tools(timeout=4),
        "list_resources": lambda c: c.list_resources(timeout=4),
        "list_resource_templates": lambda c: c.list_resource_templates(timeout=4),
        "read_resource": lambda c: c.read_resource("mem://r", timeout=4),
        "list_prompts": lambda c: c.list_prompts(timeout=4),
        "get_prompt": lambda c: c.get_prompt("p", timeout=4),
        "complete": lambda c: c.complete({"type": "ref/prompt", "name": "p"}, "a", "", timeout=4),
        "set_logging_level": lambda c: c.set_logging_level("info", timeout=4),
        "ping": lambda c: c.ping(timeout=4),
    }
    async with connected(server, ClientOptions(request_timeout=100)) as client:
        for name, call in calls.items():
            start = trio.current_time()
            with pytest.raises(RequestTimeoutError) as info:
                await call(client)
            assert info.value.timeout == 4, name
            assert trio.current_time() - start == 4, name
        stalled.set()
        for call in calls.values():
            await call(client)  # the same calls answered in time


async def test_a_listing_has_one_deadline_for_all_its_pages(autojump_clock: Any) -> None:
    server = builtin_server()
    server.page_size = 1
    original = server.dispatch

    async def slow_pages(request: Any, conn: Any) -> Any:
        if request.method == "tools/list":
            await trio.sleep(1)
        return await original(request, conn)

    server.dispatch = slow_pages  # type: ignore[method-assign]
    async with connected(server) as client:
        pages = len(server.tools)
        assert pages > 5
        start = trio.current_time()
        with pytest.raises(RequestTimeoutError, match=r"within 3\.5 s"):
            await client.list_tools(timeout=3.5)
        assert trio.current_time() - start == 3.5
        tools = await client.list_tools(timeout=pages + 1)
        assert len(tools) == pages
