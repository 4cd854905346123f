"""A tool the server runs only as a task is neither offered to the model nor called."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from opex_trio.agent.chat import Chat
from opex_trio.errors import CapabilityError
from opex_trio.testing.mcp_server import ToolContext, builtin_server

from .test_chat import asks, call, says, setup, tool_messages


async def test_task_only_tools_are_not_offered_and_not_called(autojump_clock: Any) -> None:
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
