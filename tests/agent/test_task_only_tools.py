"""A tool the server runs only as a task: offered and called as a task when its server runs
tasks, neither offered nor called when it does not."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import trio

from opex_trio.agent.chat import Chat, ToolProgress
from opex_trio.errors import CapabilityError
from opex_trio.mcp.client import ClientOptions
from opex_trio.protocol.versions import Era
from opex_trio.testing.mcp_server import ToolContext, builtin_server
from opex_trio.testing.task_server import ServerTask, TaskTestServer

from .test_chat import asks, call, says, setup, tool_messages


async def test_task_only_tools_of_a_server_without_tasks_are_not_offered_nor_called(
    autojump_clock: Any,
) -> None:
    server = builtin_server()

    def render(args: Mapping[str, Any], ctx: ToolContext) -> str:
        return "rendered"

    server.add_tool("render_video", render, execution={"taskSupport": "required"})
    server.add_tool("maybe_task", render, execution={"taskSupport": "optional"})
    async with setup(server) as (llm, client, mcp):
        assert mcp.tools()["render_video"].tool.task_support == "required"
        llm.push(asks(call("c1", "render_video", {})), says("ok"))
        result = await Chat(client, mcp=mcp).chat(
            model="m", messages=[{"role": "user", "content": "render"}]
        )
        offered = {t["function"]["name"] for t in llm.requests[0].json["tools"]}
        assert "render_video" not in offered
        assert {"maybe_task", "echo"} <= offered
        assert result.tool_calls[0].outcome == "unknown_tool"
        assert "render_video" not in tool_messages(llm.requests[1])[0]["content"].split(": ")[-1]

        sent = [r.method for r in server.requests]
        with pytest.raises(CapabilityError, match="runs only as a task") as info:
            await mcp.call_tool("tools", "render_video")
        assert info.value.capability == "tasks" and info.value.server == "tools"
        assert [r.method for r in server.requests] == sent
        assert (await mcp.call_tool("tools", "maybe_task")).text == "rendered"


@pytest.mark.parametrize(
    "options",
    [
        ClientOptions(era=Era.MODERN),
        ClientOptions(era=Era.LEGACY, protocol_version="2025-11-25"),
    ],
    ids=["modern", "legacy"],
)
async def test_task_only_tools_of_a_server_that_runs_tasks_are_offered_and_called(
    autojump_clock: Any, options: ClientOptions
) -> None:
    server = TaskTestServer(modern=options.era is Era.MODERN, poll_interval_ms=500)

    async def render(args: Mapping[str, Any], task: ServerTask) -> str:
        task.say("encoding")
        await trio.sleep(4.2)
        return f"rendered {args['title']}"

    server.add_task_tool(
        "render_video",
        render,
        input_schema={"type": "object", "properties": {"title": {"type": "string"}}},
    )
    async with setup(server, client_options=options) as (llm, client, mcp):
        assert mcp.status("tools").runs_tasks
        llm.push(asks(call("c1", "render_video", {"title": "intro"})), says("done"))
        start = trio.current_time()
        seen: list[ToolProgress] = []
        result = await Chat(client, mcp=mcp, on_progress=seen.append).chat(
            model="m", messages=[{"role": "user", "content": "render the intro"}]
        )
        assert trio.current_time() - start == pytest.approx(4.5)
        if options.era is Era.MODERN:
            # The task's changes of status are the call's progress.
            assert [(p.name, p.message) for p in seen] == [
                ("render_video", "working: encoding"),
                ("render_video", "completed: encoding"),
            ]
        offered = {t["function"]["name"] for t in llm.requests[0].json["tools"]}
        assert "render_video" in offered
        assert result.tool_calls[0].outcome == "ok"
        assert tool_messages(llm.requests[1])[0]["content"] == "rendered intro"
        assert result.content == "done"
        sent = [r.method for r in server.requests]
        assert sent.count("tools/call") == 1
        assert ("tasks/result" in sent) is (options.era is Era.LEGACY)


async def test_a_chat_tool_timeout_cancels_the_task_on_the_server(autojump_clock: Any) -> None:
    server = TaskTestServer(poll_interval_ms=500)

    async def forever(args: Mapping[str, Any], task: ServerTask) -> str:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    server.add_task_tool("forever", forever)
    async with setup(server, client_options=ClientOptions(era=Era.MODERN)) as (llm, client, mcp):
        llm.push(asks(call("c1", "forever", {})), says("gave up"))
        start = trio.current_time()
        result = await Chat(client, mcp=mcp, tool_timeout=3).chat(
            model="m", messages=[{"role": "user", "content": "wait"}]
        )
        assert trio.current_time() - start == pytest.approx(3)
        assert result.tool_calls[0].outcome == "timeout"
        assert server.cancelled_tasks == ["task-1"]
        assert server.tasks["task-1"].status == "cancelled"
