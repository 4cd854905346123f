"""One exception per call: the chat loop never lets an exception group reach its caller.

Each case runs with 1, 2 and 8 tool calls in the turn, since trio's groups
appear only once the calls run side by side in a nursery. The tools are MCP
tools of an in-process server under a real SessionManager, or the program's
own tools; the model is the scripted LLM server over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import pytest
import trio

from opex_trio.agent.chat import Chat, ToolStarted
from opex_trio.testing.llm_server import LLMTestServer, SSEChunk, SSEReply, completion_chunks
from opex_trio.testing.mcp_server import McpTestServer, ToolContext

from .test_chat import asks, call, says, setup

COUNTS = [1, 2, 8]
Mode = Literal["chat", "stream"]
Kind = Literal["mcp", "custom"]

HOLD = {
    "type": "function",
    "function": {"name": "hold", "parameters": {"type": "object", "properties": {}}},
}


class Boom(Exception):
    pass


def own_error(kind: str) -> Exception:
    """The program's own exception: a plain one, or a group the program made itself."""
    if kind == "group":
        return ExceptionGroup("the program's own group", [Boom("one"), KeyError("two")])
    return Boom("the program's own error")


class Holding:
    """Tools that never finish, and an event set once ``count`` of them run."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.running = 0
        self.all_running = trio.Event()
        self.server = McpTestServer("holding")
        self.server.add_tool("hold_mcp", self._hold)

    async def _hold(self, args: Mapping[str, Any], ctx: ToolContext) -> str:
        self.running += 1
        if self.running == self.count:
            self.all_running.set()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def executor(self, name: str, arguments: dict[str, Any], context: Any) -> Any:
        return await self._hold(arguments, None)  # type: ignore[arg-type]

    def chat(self, client: Any, mcp: Any, kind: Kind, **options: Any) -> tuple[Chat, str]:
        if kind == "mcp":
            return Chat(client, mcp=mcp, tool_timeout=None, **options), "hold_mcp"
        chat = Chat(
            client,
            mcp=mcp,
            custom_tools=[HOLD],
            custom_tool_executor=self.executor,
            tool_timeout=None,
            **options,
        )
        return chat, "hold"


async def run_chat(chat: Chat, mode: Mode, on_event: Callable[[Any], Awaitable[None]]) -> Any:
    messages = [{"role": "user", "content": "go"}]
    if mode == "chat":
        return await chat.chat(model="m", messages=messages)
    async with chat.stream(model="m", messages=messages) as events:
        async for event in events:
            await on_event(event)
    return None


async def nothing(event: Any) -> None:
    pass


def push_calls(llm: LLMTestServer, mode: Mode, tool: str, count: int) -> None:
    """Script a model turn that asks for ``count`` calls of ``tool``, streamed or not."""
    calls = [call(f"c{i}", tool, {}) for i in range(count)]
    if mode == "chat":
        llm.push(asks(*calls))
    else:
        llm.push(SSEReply([SSEChunk(c) for c in completion_chunks((), tool_calls=calls)]))


@pytest.mark.parametrize("count", COUNTS)
@pytest.mark.parametrize("kind", ["mcp", "custom"])
@pytest.mark.parametrize("error", ["plain", "group"])
async def test_an_exception_of_the_stream_block_comes_back_unchanged(
    autojump_clock: Any, count: int, kind: Kind, error: str
) -> None:
    holding = Holding(count)
    boom = own_error(error)
    async with setup(holding.server) as (llm, client, mcp):
        chat, tool = holding.chat(client, mcp, kind)
        push_calls(llm, "stream", tool, count)
        started = 0

        async def body(event: Any) -> None:
            nonlocal started
            started += isinstance(event, ToolStarted)
            if started == count:
                await holding.all_running.wait()
                raise boom

        with pytest.raises(type(boom)) as info:
            await run_chat(chat, "stream", body)
        assert info.value is boom
        assert boom.__context__ is None and boom.__cause__ is None
        assert not getattr(boom, "__notes__", None)
        assert holding.running == count


@pytest.mark.parametrize("count", COUNTS)
@pytest.mark.parametrize("mode", ["chat", "stream"])
@pytest.mark.parametrize("hook_kind", ["sync", "async"])
async def test_a_raising_before_tool_call_hook_surfaces_bare(
    autojump_clock: Any, count: int, mode: Mode, hook_kind: str
) -> None:
    raised: list[Boom] = []

    def sync_hook(name: str, arguments: dict[str, Any], context: Any) -> None:
        raised.append(Boom(f"refused call {len(raised)}"))
        raise raised[-1]

    async def async_hook(name: str, arguments: dict[str, Any], context: Any) -> None:
        await trio.sleep(0)  # every call reaches the hook before the first one raises
        sync_hook(name, arguments, context)

    hook = sync_hook if hook_kind == "sync" else async_hook
    holding = Holding(count)
    async with setup(holding.server) as (llm, client, mcp):
        chat, tool = holding.chat(client, mcp, "mcp", before_tool_call=hook)
        push_calls(llm, mode, tool, count)
        with pytest.raises(Boom) as info:
            await run_chat(chat, mode, nothing)
        assert info.value is raised[0]
        assert any("before_tool_call" in note for note in info.value.__notes__)
        assert holding.running == 0
        # The chat is usable again afterwards.
        llm.push(says("fine"))
        result = await Chat(client, mcp=mcp).chat(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
        assert result.content == "fine"


@pytest.mark.parametrize("count", COUNTS)
@pytest.mark.parametrize("mode", ["chat", "stream"])
@pytest.mark.parametrize("kind", ["mcp", "custom"])
async def test_cancelling_while_tools_run_is_one_plain_cancelled(
    autojump_clock: Any, count: int, mode: Mode, kind: Kind
) -> None:
    holding = Holding(count)
    caught: list[BaseException] = []
    async with setup(holding.server) as (llm, client, mcp):
        chat, tool = holding.chat(client, mcp, kind)
        push_calls(llm, mode, tool, count)
        scope = trio.CancelScope()

        async def caller() -> None:
            with scope:
                try:
                    await run_chat(chat, mode, nothing)
                except trio.Cancelled as exc:
                    caught.append(exc)
                    raise
                raise AssertionError("the chat returned although it was cancelled")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(caller)
            await holding.all_running.wait()
            scope.cancel()
        assert len(caught) == 1 and type(caught[0]) is trio.Cancelled
        assert scope.cancelled_caught
        if kind == "mcp":
            # Every call was cancelled at the server too, once the client told it.
            with trio.fail_after(60):
                while len(holding.server.cancelled) < count:
                    await trio.sleep(0.01)


@pytest.mark.parametrize("count", COUNTS)
@pytest.mark.parametrize("mode", ["chat", "stream"])
async def test_the_callers_deadline_still_ends_a_chat_whose_tools_run(
    autojump_clock: Any, count: int, mode: Mode
) -> None:
    holding = Holding(count)
    async with setup(holding.server) as (llm, client, mcp):
        chat, tool = holding.chat(client, mcp, "mcp")
        push_calls(llm, mode, tool, count)
        start = trio.current_time()
        with trio.move_on_after(100) as scope:
            await run_chat(chat, mode, nothing)
            raise AssertionError("the chat returned although its deadline passed")
        assert scope.cancelled_caught
        assert trio.current_time() - start == 100
        assert holding.running == count
