"""Tool deadlines that progress restarts, through the manager and the chat loop, in virtual time."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from opex_trio.agent.chat import Chat
from opex_trio.errors import RequestTimeoutError
from opex_trio.mcp.client import ClientOptions
from tests.mcp.support import long_job_server

from .test_chat import asks, call, says, setup, tool_messages


async def test_the_manager_resets_per_call_and_per_server(autojump_clock: Any) -> None:
    server = long_job_server()
    per_server = ClientOptions(reset_on_progress=True, max_total_timeout=40)
    async with setup(server, client_options=per_server) as (_llm, _client, mcp):
        start = trio.current_time()
        result = await mcp.call_tool("tools", "long_job", {"steps": 30, "every": 1}, timeout=3)
        assert result.text == "finished"
        assert trio.current_time() - start == 30
        start = trio.current_time()
        with pytest.raises(RequestTimeoutError, match="maximum total of 40 s"):
            await mcp.call_tool("tools", "long_job", {"steps": 100, "every": 1}, timeout=3)
        assert trio.current_time() - start == 40
        # Per call: no reset, so the idle deadline is the whole deadline.
        start = trio.current_time()
        with pytest.raises(RequestTimeoutError, match="within 3 s"):
            await mcp.call(
                "long_job", {"steps": 10, "every": 1}, timeout=3, reset_on_progress=False
            )
        assert trio.current_time() - start == 3


async def test_the_chat_default_lets_a_reporting_tool_run_long(autojump_clock: Any) -> None:
    async with setup(long_job_server()) as (llm, client, mcp):
        llm.push(asks(call("c1", "long_job", {"steps": 90, "every": 1})), says("ok"))
        chat = Chat(client, mcp=mcp, tool_timeout=5, reset_tool_timeout_on_progress=True)
        result = await chat.chat(model="m", messages=[{"role": "user", "content": "work"}])
        (finished,) = result.tool_calls
        assert finished.outcome == "ok" and finished.duration == 90
        assert tool_messages(llm.requests[1])[0]["content"] == "finished"

        # Silent for longer than the idle deadline: a timeout the model reads.
        llm.push(asks(call("c2", "long_job", {"steps": 2, "every": 7})), says("ok"))
        result = await chat.chat(model="m", messages=[{"role": "user", "content": "work"}])
        (stalled,) = result.tool_calls
        assert stalled.outcome == "timeout" and stalled.duration == 5
        assert (
            "no answer or progress for tools/call within 5 s"
            in (tool_messages(llm.requests[3])[0]["content"])
        )


async def test_the_chat_maximum_bounds_a_tool_that_keeps_reporting(autojump_clock: Any) -> None:
    server = long_job_server()
    async with setup(server) as (llm, client, mcp):
        llm.push(asks(call("c1", "long_job", {"steps": 1000, "every": 1})), says("ok"))
        chat = Chat(
            client,
            mcp=mcp,
            tool_timeout=5,
            reset_tool_timeout_on_progress=True,
            max_tool_timeout=25,
        )
        result = await chat.chat(model="m", messages=[{"role": "user", "content": "work"}])
        (bounded,) = result.tool_calls
        assert bounded.outcome == "timeout" and bounded.duration == 25
        assert tool_messages(llm.requests[1])[0]["content"] == (
            "Error: the tool did not finish within 25 s"
        )
        assert len(server.cancelled) == 1
