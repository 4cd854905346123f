"""Tool calls run as tasks over real Streamable HTTP on loopback, in both eras."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
import trio

from opex_trio.errors import RequestTimeoutError
from opex_trio.mcp.client import ClientOptions, McpClient
from opex_trio.protocol.types import ElicitParams, ElicitResult
from opex_trio.protocol.versions import Era
from opex_trio.testing.http_server import McpHttpServer
from opex_trio.testing.task_server import TaskTestServer
from opex_trio.transports.base import Transport
from opex_trio.transports.http import HttpParameters, open_http_transport

from .support import BOUND
from .test_tasks import confirm, forever, render


async def accept(params: ElicitParams) -> ElicitResult:
    return ElicitResult("accept", content={"ok": True})


@asynccontextmanager
async def over_http(
    modern: bool, options: ClientOptions
) -> AsyncIterator[tuple[McpClient, TaskTestServer, McpHttpServer]]:
    tasks = TaskTestServer(modern=modern, poll_interval_ms=50)
    tasks.add_task_tool("render", render)
    tasks.add_task_tool("confirm", confirm)
    tasks.add_task_tool("forever", forever)
    http = McpHttpServer(tasks, stateful=not modern)
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            tasks.run_tasks_in(nursery)
            await nursery.start(http.serve)
            params = HttpParameters(http.url, name="tasks-http")

            def factory() -> AbstractAsyncContextManager[Transport]:
                return open_http_transport(params)

            async with McpClient(factory, name="tasks-http", options=options) as client:
                yield client, tasks, http
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("modern", [True, False], ids=["modern", "legacy-2025-11-25"])
async def test_tasks_over_streamable_http(modern: bool) -> None:
    options = ClientOptions(
        era=Era.MODERN if modern else Era.LEGACY,
        protocol_version="2025-11-25",
        elicitation_handler=accept,
        request_timeout=BOUND,
    )
    async with over_http(modern, options) as (client, tasks, http):
        assert client.runs_tasks
        done = await client.call_tool("render", {"seconds": 0.2}, task=True)
        assert done.text == "rendered in 1 steps"
        answered = await client.call_tool("confirm", task=True)
        assert answered.text == "answer: accept {'ok': True}"
        with pytest.raises(RequestTimeoutError):
            await client.call_tool("forever", timeout=0.5, task=True)
        assert tasks.cancelled_tasks == ["task-3"]
        assert tasks.tasks["task-3"].status == "cancelled"
    follow = "tasks/get" if modern else "tasks/result"
    posts = [r for r in http.log if r.jsonrpc_method in (follow, "tasks/cancel")]
    assert posts
    if modern:
        # The extension's requests name their task, for routing.
        assert {r.headers["mcp-name"] for r in posts} == {"task-1", "task-2", "task-3"}
        assert all(r.headers["mcp-method"] == r.jsonrpc_method for r in posts)
