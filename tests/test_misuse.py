"""Misuse raises UsageError, an OpexError: a closed Client or SessionManager, use outside `async with`."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from opex_trio import Chat, Client, OpexError, SessionManager, UsageError
from opex_trio.mcp.manager import ServerOptions
from opex_trio.testing.llm_server import JSONReply, completion, open_llm_server
from opex_trio.testing.mcp_server import builtin_server

MESSAGES = [{"role": "user", "content": "hi"}]


def test_usage_error_is_an_opex_error_and_still_a_runtime_error() -> None:
    assert issubclass(UsageError, OpexError)
    assert issubclass(UsageError, RuntimeError)


async def test_a_client_outside_its_async_with() -> None:
    with trio.fail_after(60):
        async with open_llm_server() as llm:
            client = Client("k", base_url=llm.base_url)
            with pytest.raises(UsageError, match="async with"):
                await client.chat_completion(model="m", messages=MESSAGES)
            async with client:
                llm.push(JSONReply(completion("fine")))
                assert (await client.chat_completion(model="m", messages=MESSAGES)).content
                stream = client.stream_chat(model="m", messages=MESSAGES)
                with pytest.raises(UsageError, match="inside its 'async with'"):
                    aiter(stream)
            with pytest.raises(UsageError, match="closed"):
                await client.chat_completion(model="m", messages=MESSAGES)
            with pytest.raises(UsageError, match="again"):
                await client.__aenter__()


async def test_a_chat_stream_entered_twice() -> None:
    with trio.fail_after(60):
        async with open_llm_server() as llm, Client("k", base_url=llm.base_url) as client:
            llm.push(JSONReply(completion("fine")))
            stream = client.stream_chat(model="m", messages=MESSAGES)
            with pytest.raises(OpexError):
                # The scripted reply is not a stream; entering once is enough to use it up.
                await stream.__aenter__()
            with pytest.raises(UsageError, match="once"):
                await stream.__aenter__()


async def call_each(mcp: SessionManager) -> list[BaseException]:
    """Every call that needs an open manager, and what each raised."""
    found: list[BaseException] = []
    attempts: list[Any] = [
        lambda: mcp.add_server({"command": "true"}, name="x"),
        lambda: mcp.remove_server("s"),
        lambda: mcp.call_tool("s", "echo", {"message": "x"}),
        lambda: mcp.call("echo", {"message": "x"}),
        lambda: mcp.wait_ready(),
        lambda: mcp.refresh_tools("s"),
    ]
    for attempt in attempts:
        with pytest.raises(UsageError) as info:
            await attempt()
        found.append(info.value)
    with pytest.raises(UsageError) as info:
        mcp.client("s")
    found.append(info.value)
    return found


async def test_a_session_manager_outside_its_async_with(autojump_clock: Any) -> None:
    mcp = SessionManager()
    errors = await call_each(mcp)
    assert all("async with" in str(e) for e in errors)
    async with trio.open_nursery() as nursery:
        async with mcp:
            await mcp.add_server(
                builtin_server().in_process(nursery),
                name="s",
                options=ServerOptions(health=None),
                wait=True,
            )
            with pytest.raises(UsageError, match="only once"):
                await mcp.__aenter__()
        errors = await call_each(mcp)
        assert all("closed" in str(e) for e in errors)
        # The snapshots still answer.
        assert [s.state for s in mcp.servers()] == ["stopped"]
        with pytest.raises(UsageError, match="only once"):
            await mcp.__aenter__()
        nursery.cancel_scope.cancel()


async def test_a_chat_over_a_closed_manager_raises_to_the_program(autojump_clock: Any) -> None:
    async with open_llm_server() as llm, Client("k", base_url=llm.base_url) as client:
        async with trio.open_nursery() as nursery:
            async with SessionManager() as mcp:
                await mcp.add_server(
                    builtin_server().in_process(nursery),
                    name="s",
                    options=ServerOptions(health=None),
                    wait=True,
                )
                chat = Chat(client, mcp=mcp)
            nursery.cancel_scope.cancel()
        call = {
            "id": "c1",
            "type": "function",
            "function": {"name": "echo", "arguments": '{"message": "x"}'},
        }
        llm.push(JSONReply(completion(None, tool_calls=[call])))
        with pytest.raises(UsageError, match="closed"):
            await chat.chat(model="m", messages=MESSAGES)
