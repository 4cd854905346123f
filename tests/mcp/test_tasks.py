"""Tool calls a server runs as tasks, followed to their end, in virtual time.

The server is opex_trio's test server with task tools
(:mod:`opex_trio.testing.task_server`), in process: modern (the
``io.modelcontextprotocol/tasks`` extension) and legacy (the experimental
tasks of 2025-11-25).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from opex_trio.errors import ConfigError, McpError, ProtocolError, RequestTimeoutError
from opex_trio.mcp.client import ClientOptions, McpClient
from opex_trio.protocol.types import ElicitParams, ElicitResult, ProgressParams
from opex_trio.protocol.versions import Era
from opex_trio.testing.mcp_server import ToolFailure, _RpcError
from opex_trio.testing.task_server import ServerTask, TaskTestServer

LEGACY = ClientOptions(era=Era.LEGACY, protocol_version="2025-11-25")


async def render(args: Mapping[str, Any], task: ServerTask) -> str:
    """Work ``seconds`` in steps of one second, saying each step."""
    seconds = float(args.get("seconds", 3))
    step = 0
    while seconds > 0:
        step += 1
        task.say(f"step {step}")
        await task.ctx.progress(step)
        await trio.sleep(min(1.0, seconds))
        seconds -= 1.0
    return f"rendered in {step} steps"


async def confirm(args: Mapping[str, Any], task: ServerTask) -> str:
    answer = await task.ask(
        "confirm",
        "elicitation/create",
        {
            "message": "Render it?",
            "requestedSchema": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
        },
    )
    await trio.sleep(1)
    return f"answer: {answer['action']} {answer.get('content')}"


async def forever(args: Mapping[str, Any], task: ServerTask) -> str:
    task.say("started")
    await trio.sleep_forever()
    raise AssertionError("unreachable")


async def breaks(args: Mapping[str, Any], task: ServerTask) -> str:
    await trio.sleep(1)
    if args.get("as_tool_error"):
        raise ToolFailure("the tool says no")
    raise _RpcError(-32603, "the render farm is down")


def task_server(*, modern: bool = True) -> TaskTestServer:
    server = TaskTestServer(modern=modern, poll_interval_ms=200)
    server.add_task_tool("render", render)
    server.add_task_tool("confirm", confirm)
    server.add_task_tool("forever", forever)
    server.add_task_tool("breaks", breaks)
    return server


@asynccontextmanager
async def connected(
    server: TaskTestServer, options: ClientOptions | None = None
) -> AsyncIterator[McpClient]:
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            factory = server.in_process(nursery)
            opts = options or ClientOptions(era=Era.MODERN)
            async with McpClient(factory, name="tasks", options=opts) as client:
                yield client
            nursery.cancel_scope.cancel()


def methods(server: TaskTestServer) -> list[str]:
    return [r.method for r in server.requests]


async def test_a_modern_task_is_polled_to_its_result_with_progress(autojump_clock: Any) -> None:
    server = task_server()
    seen: list[ProgressParams] = []
    async with connected(server) as client:
        assert client.runs_tasks
        start = trio.current_time()
        result = await client.call_tool(
            "render", {"seconds": 2.9}, timeout=30, progress=seen.append
        )
        assert result.text == "rendered in 3 steps"
        # Polled every 200 ms until the poll after the work ended (at 2.9 s).
        assert trio.current_time() - start == pytest.approx(3.0)
        assert methods(server).count("tasks/get") == 15
        assert "tasks/cancel" not in methods(server)
        call = server.requests[methods(server).index("tools/call")]
        meta = (call.params or {})["_meta"]
        declared = meta["io.modelcontextprotocol/clientCapabilities"]["extensions"]
        assert "io.modelcontextprotocol/tasks" in declared
        # Each change of status reached the progress callback, in order.
        assert [p.message for p in seen] == [
            "working: step 1",
            "working: step 2",
            "working: step 3",
            "completed: step 3",
        ]
        assert [p.progress for p in seen] == [1.0, 2.0, 3.0, 4.0]
        assert {p.progress_token for p in seen} == {"task-1"}


async def test_input_a_task_asks_for_goes_through_the_handler_once(autojump_clock: Any) -> None:
    asked: list[ElicitParams] = []

    async def elicit(params: ElicitParams) -> ElicitResult:
        asked.append(params)
        await trio.sleep(2)  # a person thinking, while the client keeps the task
        return ElicitResult("accept", content={"ok": True})

    server = task_server()
    options = ClientOptions(era=Era.MODERN, elicitation_handler=elicit)
    async with connected(server, options) as client:
        result = await client.call_tool("confirm", timeout=60)
    assert result.text == "answer: accept {'ok': True}"
    assert [p.message for p in asked] == ["Render it?"]
    updates = [r for r in server.requests if r.method == "tasks/update"]
    assert len(updates) == 1
    params = updates[0].params or {}
    assert params["taskId"] == "task-1"
    assert params["inputResponses"] == {"confirm": {"action": "accept", "content": {"ok": True}}}


async def test_input_the_client_cannot_give_fails_the_call_and_cancels_the_task(
    autojump_clock: Any,
) -> None:
    server = task_server()
    async with connected(server) as client:  # no elicitation handler
        with pytest.raises(ProtocolError, match=r"elicitation/create input \('confirm'\), which"):
            await client.call_tool("confirm", timeout=60)
    assert server.cancelled_tasks == ["task-1"]
    assert server.tasks["task-1"].status == "cancelled"


async def test_the_deadline_cancels_the_task_on_the_server(autojump_clock: Any) -> None:
    server = task_server()
    async with connected(server) as client:
        start = trio.current_time()
        with pytest.raises(RequestTimeoutError, match="did not finish within 5 s") as info:
            await client.call_tool("forever", timeout=5)
        assert trio.current_time() - start == pytest.approx(5)
        assert info.value.timeout == 5 and info.value.method == "tools/call"
        assert server.cancelled_tasks == ["task-1"]
        assert server.tasks["task-1"].status == "cancelled"
        # Cancelled with tasks/cancel, never notifications/cancelled.
        assert not [n for n in server.notifications if n.method == "notifications/cancelled"]
        # The connection serves the next call as usual.
        assert (await client.call_tool("render", {"seconds": 0.5})).text == "rendered in 1 steps"


async def test_a_cancelled_caller_cancels_the_task(autojump_clock: Any) -> None:
    server = task_server()
    async with connected(server) as client:
        with trio.move_on_after(3) as scope:
            await client.call_tool("forever", timeout=None)
        assert scope.cancelled_caught
        assert server.cancelled_tasks == ["task-1"]


async def test_status_changes_restart_an_idle_deadline(autojump_clock: Any) -> None:
    server = task_server()
    async with connected(server) as client:
        start = trio.current_time()
        # Ten seconds of work under a 3 s idle deadline: each step is progress.
        result = await client.call_tool(
            "render", {"seconds": 9.9}, timeout=3, reset_on_progress=True
        )
        assert result.text == "rendered in 10 steps"
        assert trio.current_time() - start == pytest.approx(10.0)
        # A task that says nothing more fails 3 s after its last change.
        with pytest.raises(RequestTimeoutError, match="made no progress within 3 s"):
            await client.call_tool("forever", timeout=3, reset_on_progress=True)
        assert server.cancelled_tasks == ["task-2"]
        # The idle deadline never outlasts the call's maximum total.
        start = trio.current_time()
        with pytest.raises(RequestTimeoutError, match="did not finish within 4 s"):
            await client.call_tool(
                "render", {"seconds": 10}, timeout=3, reset_on_progress=True, max_total_timeout=4
            )
        assert trio.current_time() - start == pytest.approx(4)


async def test_a_failed_task_raises_the_servers_error(autojump_clock: Any) -> None:
    server = task_server()
    async with connected(server) as client:
        with pytest.raises(McpError, match="render farm is down") as info:
            await client.call_tool("breaks", timeout=30)
        assert info.value.code == -32603
        assert info.value.server == "tasks" and info.value.method == "tools/call"
        # A tool's own error is a completed task: a result for the model to read.
        result = await client.call_tool("breaks", {"as_tool_error": True}, timeout=30)
        assert result.is_error and result.text == "the tool says no"
    assert server.cancelled_tasks == []


# -- the experimental tasks of 2025-11-25 (legacy era)


async def test_a_legacy_task_is_asked_for_and_its_result_fetched(autojump_clock: Any) -> None:
    server = task_server(modern=False)
    seen: list[ProgressParams] = []
    async with connected(server, LEGACY) as client:
        assert client.protocol_version == "2025-11-25" and client.runs_tasks
        result = await client.call_tool(
            "render", {"seconds": 2}, timeout=30, progress=seen.append, task=True
        )
        assert result.text == "rendered in 2 steps"
        call = server.requests[methods(server).index("tools/call")]
        assert (call.params or {})["task"] == {}
        assert "tasks/result" in methods(server)
        # The call's progress token stayed the task's: the server's progress arrived.
        assert [p.progress for p in seen] == [1.0, 2.0]
        # Without task=True the server refuses a tool that runs only as a task.
        with pytest.raises(McpError) as info:
            await client.call_tool("render", {"seconds": 1}, timeout=30)
        assert info.value.code == -32601


async def test_a_legacy_task_asks_for_input_with_server_requests(autojump_clock: Any) -> None:
    async def elicit(params: ElicitParams) -> ElicitResult:
        return ElicitResult("decline")

    server = task_server(modern=False)
    options = ClientOptions(
        era=Era.LEGACY, protocol_version="2025-11-25", elicitation_handler=elicit
    )
    async with connected(server, options) as client:
        result = await client.call_tool("confirm", timeout=30, task=True)
    assert result.text == "answer: decline None"


async def test_a_legacy_task_is_cancelled_at_the_deadline(autojump_clock: Any) -> None:
    server = task_server(modern=False)
    async with connected(server, LEGACY) as client:
        with pytest.raises(RequestTimeoutError, match="did not finish within 2 s"):
            await client.call_tool("forever", timeout=2, task=True)
        assert server.cancelled_tasks == ["task-1"]
        with pytest.raises(McpError, match="render farm is down"):
            await client.call_tool("breaks", timeout=30, task=True)


async def test_a_handler_answer_that_breaks_the_schema_fails_the_call(autojump_clock: Any) -> None:
    async def wrong(params: ElicitParams) -> ElicitResult:
        return ElicitResult("accept", content={"ok": "not a boolean"})

    server = task_server()
    async with connected(
        server, ClientOptions(era=Era.MODERN, elicitation_handler=wrong)
    ) as client:
        with pytest.raises(ConfigError, match=r"^the elicitation handler's answer") as info:
            await client.call_tool("confirm", timeout=60)
        assert "cannot be sent" not in str(info.value)
        assert server.cancelled_tasks == ["task-1"]
        assert "tasks/update" not in methods(server)
        # Arguments that cannot be encoded fail before anything is sent.
        with pytest.raises(ConfigError, match="arguments of tool 'render' cannot be sent"):
            await client.call_tool("render", {"seconds": object()})
        assert methods(server).count("tools/call") == 1
