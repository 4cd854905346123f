"""The chat loop, driven by the scripted LLM server over real HTTP on 127.0.0.1.

MCP tools come from the built-in test server run in process under a real
SessionManager, so these tests run in virtual time; one test at the end uses
server-everything as a real process.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from opex_trio import telemetry
from opex_trio.agent.chat import (
    Chat,
    ChatEvent,
    ChatFinished,
    TextDelta,
    ToolFinished,
    ToolProgress,
    ToolResult,
    ToolStarted,
    TurnFinished,
)
from opex_trio.agent.hooks import NOT_MINE, Continue, Deny, NotMine, Rewrite, Stop
from opex_trio.agent.sampling import sampling_handler
from opex_trio.errors import ConfigError
from opex_trio.llm import Client
from opex_trio.mcp.client import ClientOptions
from opex_trio.mcp.manager import ServerOptions, SessionManager
from opex_trio.testing.llm_server import (
    JSONReply,
    LLMTestServer,
    RecordedRequest,
    SSEChunk,
    SSEReply,
    completion,
    completion_chunks,
    open_llm_server,
)
from opex_trio.testing.mcp_server import McpTestServer, builtin_server

BOUND = 600  # virtual seconds

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


def asks(*calls: dict[str, Any]) -> JSONReply:
    return JSONReply(completion(None, tool_calls=calls))


def says(text: str) -> JSONReply:
    return JSONReply(completion(text))


def tool_messages(request: RecordedRequest) -> list[dict[str, Any]]:
    return [m for m in request.json["messages"] if m["role"] == "tool"]


@asynccontextmanager
async def setup(
    server: McpTestServer | None = None, *, client_options: ClientOptions | None = None
) -> AsyncIterator[tuple[LLMTestServer, Client, SessionManager]]:
    with trio.fail_after(BOUND):
        async with (
            open_llm_server() as llm,
            Client("test-key", base_url=llm.base_url) as client,
            trio.open_nursery() as nursery,
            SessionManager() as mcp,
        ):
            options = ServerOptions(client=client_options or ClientOptions(), health=None)
            await mcp.add_server(
                (server or builtin_server()).in_process(nursery),
                name="tools",
                options=options,
                wait=True,
            )
            yield llm, client, mcp
            nursery.cancel_scope.cancel()


async def test_parallel_tool_calls_over_mcp_and_custom_tools(autojump_clock: Any) -> None:
    seen: list[tuple[str, dict[str, Any], Any]] = []

    def executor(name: str, arguments: dict[str, Any], context: Any) -> Any:
        seen.append((name, arguments, context))
        if name == "get_weather":
            return {"city": arguments["city"], "sky": "clear"}
        return NOT_MINE

    async with setup() as (llm, client, mcp):
        llm.push(
            asks(
                call("c1", "add", {"a": 2, "b": 40}),
                call("c2", "get_weather", {"city": "Oslo"}),
                call("c3", "echo", {"message": "hi"}),
            ),
            says("Done: 42, clear in Oslo, hi."),
        )
        chat = Chat(client, mcp=mcp, custom_tools=[WEATHER], custom_tool_executor=executor)
        result = await chat.chat(
            model="m",
            messages=[{"role": "user", "content": "go"}],
            system_prompt="You are terse.",
            context={"conversation_id": 123},
        )
    assert result.stop_reason == "answered"
    assert result.content == "Done: 42, clear in Oslo, hi."
    assert result.turns == 2
    assert result.usage.prompt_tokens == 10 and result.usage.total_tokens == 24
    first, second = llm.requests
    assert first.json["messages"][0] == {"role": "system", "content": "You are terse."}
    names = [t["function"]["name"] for t in first.json["tools"]]
    assert names[0] == "get_weather" and {"add", "echo", "sleep"} <= set(names)
    # Results go back in the model's order, whatever order the calls finished in.
    assert [(m["tool_call_id"], m["content"]) for m in tool_messages(second)] == [
        # The text block, then the structured content it does not already hold.
        ("c1", '42\n{"sum": 42}'),
        ("c2", '{"city": "Oslo", "sky": "clear"}'),
        ("c3", "hi"),
    ]
    assert [r.outcome for r in result.tool_calls] == ["ok", "ok", "ok"]
    assert [r.server for r in result.tool_calls] == ["tools", None, "tools"]
    assert [m["role"] for m in result.messages] == [
        "assistant",
        "tool",
        "tool",
        "tool",
        "assistant",
    ]
    # The executor saw every call first (it passed on the MCP ones) with the context.
    assert sorted(name for name, _, _ in seen) == ["add", "echo", "get_weather"]
    assert all(context == {"conversation_id": 123} for _, _, context in seen)


async def test_a_tool_timeout_is_told_to_the_model_and_to_the_server(autojump_clock: Any) -> None:
    server = builtin_server()
    async with setup(server) as (llm, client, mcp):
        llm.push(asks(call("c1", "sleep", {"seconds": 100})), says("ok"))
        chat = Chat(client, mcp=mcp, tool_timeout=5)
        start = trio.current_time()
        result = await chat.chat(model="m", messages=[{"role": "user", "content": "wait"}])
        assert trio.current_time() - start == 5
        (timed_out,) = result.tool_calls
        assert timed_out.outcome == "timeout" and timed_out.duration == 5
        assert tool_messages(llm.requests[1])[0]["content"] == (
            "Error: the tool did not finish within 5 s"
        )
        assert len(server.cancelled) == 1


async def test_bad_arguments_and_unknown_tools_become_messages(autojump_clock: Any) -> None:
    async with setup() as (llm, client, mcp):
        llm.push(
            asks(
                call("c1", "echo", "{not json"),
                call("c2", "echo", "[1, 2]"),
                call("c3", "no_such_tool", {}),
                call("c4", "fail", {}),
            ),
            says("sorry"),
        )
        result = await Chat(client, mcp=mcp).chat(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
    outcomes = [r.outcome for r in result.tool_calls]
    assert outcomes == ["bad_arguments", "bad_arguments", "unknown_tool", "error"]
    contents = [m["content"] for m in tool_messages(llm.requests[1])]
    assert "not valid JSON" in contents[0]
    assert "must be a JSON object, got list" in contents[1]
    assert "no tool named 'no_such_tool'" in contents[2] and "echo" in contents[2]
    assert contents[3] == "The tool reported an error: the tool failed on purpose"


async def test_hooks_fire_once_per_message_and_stop_works_from_both(autojump_clock: Any) -> None:
    async with setup() as (llm, client, mcp):
        assistant_seen: list[dict[str, Any]] = []
        results_seen: list[tuple[str, str, ToolResult, Any]] = []

        async def on_assistant(message: dict[str, Any], context: Any) -> Any:
            assistant_seen.append(message)
            return Continue(context={**context, "turns": len(assistant_seen)})

        def on_result(call_id: str, name: str, result: ToolResult, context: Any) -> Any:
            results_seen.append((call_id, name, result, context))
            return Stop("enough", context={**context, "stopped": call_id})

        llm.push(asks(call("c1", "echo", {"message": "a"}), call("c2", "echo", {"message": "b"})))
        chat = Chat(client, mcp=mcp, on_assistant_message=on_assistant, on_tool_result=on_result)
        result = await chat.chat(
            model="m", messages=[{"role": "user", "content": "x"}], context={"user": "ada"}
        )
        assert result.stop_reason == "stopped_by_hook"
        assert len(llm.requests) == 1
        assert len(assistant_seen) == 1
        assert [(c, n, r.content) for c, n, r, _ in results_seen] == [
            ("c1", "echo", "a"),
            ("c2", "echo", "b"),
        ]
        assert results_seen[0][3] == {"user": "ada", "turns": 1}
        assert result.context == {"user": "ada", "turns": 1, "stopped": "c2"}
        # Every tool call of the message has its tool message, so the
        # conversation can be continued.
        assert [m["role"] for m in result.messages] == ["assistant", "tool", "tool"]

        llm.push(asks(call("c3", "echo", {"message": "c"})))
        stopper = Chat(client, mcp=mcp, on_assistant_message=lambda m, c: Stop())
        stopped = await stopper.chat(model="m", messages=[{"role": "user", "content": "x"}])
        assert stopped.stop_reason == "stopped_by_hook"
        assert stopped.tool_calls == () and len(stopped.messages) == 1
        assert [c["id"] for c in stopped.pending_tool_calls] == ["c3"]


async def test_execute_tools_false_returns_the_calls(autojump_clock: Any) -> None:
    async with setup() as (llm, client, mcp):
        llm.push(asks(call("c1", "crash", {})))
        result = await Chat(client, mcp=mcp).chat(
            model="m", messages=[{"role": "user", "content": "x"}], execute_tools=False
        )
        assert result.stop_reason == "tool_calls_returned"
        assert [c["function"]["name"] for c in result.pending_tool_calls] == ["crash"]
        assert result.tool_calls == ()
        # The server is alive: the tool never ran.
        assert (await mcp.call_tool("tools", "echo", {"message": "alive"})).text == "alive"


async def test_max_turns_ends_a_loop_that_keeps_calling_tools(autojump_clock: Any) -> None:
    async with setup() as (llm, client, mcp):
        llm.handler = lambda request: asks(
            call(f"c{len(llm.requests)}", "echo", {"message": "again"})
        )
        result = await Chat(client, mcp=mcp, max_turns=3).chat(
            model="m", messages=[{"role": "user", "content": "loop"}]
        )
        assert result.stop_reason == "max_turns" and result.turns == 3
        assert len(llm.requests) == 3 and len(result.tool_calls) == 3
        assert result.usage.total_tokens == 36


async def test_executor_fall_through_and_failures(
    autojump_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def executor(name: str, arguments: dict[str, Any], context: Any) -> Any:
        if name == "get_weather":
            raise RuntimeError("weather service down")
        raise NotMine

    async with setup() as (llm, client, mcp):
        llm.push(
            asks(call("c1", "get_weather", {"city": "Rome"}), call("c2", "echo", {"message": "m"})),
            says("ok"),
        )
        chat = Chat(client, mcp=mcp, custom_tools=[WEATHER], custom_tool_executor=executor)
        with caplog.at_level(logging.DEBUG, "opex_trio.agent"):
            result = await chat.chat(model="m", messages=[{"role": "user", "content": "x"}])
    weather, echo = result.tool_calls
    assert (
        weather.outcome == "error"
        and weather.content == "Error: the tool failed: weather service down"
    )
    assert "Traceback" not in weather.content
    assert echo.outcome == "ok" and echo.content == "m"
    # A handled failure is an outcome, logged as one: a one-line warning, and
    # the traceback only at DEBUG.
    records = [r for r in caplog.records if r.name == "opex_trio.agent"]
    assert [(r.levelno, r.exc_info is not None) for r in records] == [
        (logging.WARNING, False),
        (logging.DEBUG, True),
    ]
    warning, debug = records
    assert warning.getMessage() == (
        "the tool 'get_weather' failed; the model is told: RuntimeError: weather service down"
    )
    assert debug.exc_info is not None and debug.exc_info[1] is weather.error
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)


async def test_before_tool_call_can_deny_or_rewrite(autojump_clock: Any) -> None:
    def gate(name: str, arguments: dict[str, Any], context: Any) -> Any:
        if name == "crash":
            return Deny("crashing is not allowed")
        if name == "echo":
            return Rewrite({"message": arguments["message"].upper()})
        return None

    async with setup() as (llm, client, mcp):
        llm.push(
            asks(call("c1", "crash", {}), call("c2", "echo", {"message": "quiet"})), says("ok")
        )
        result = await Chat(client, mcp=mcp, before_tool_call=gate).chat(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
        denied, rewritten = result.tool_calls
        assert denied.outcome == "denied"
        assert denied.content == "Error: the call was not run: crashing is not allowed"
        assert rewritten.content == "QUIET"
        assert (await mcp.call_tool("tools", "echo", {"message": "alive"})).text == "alive"


async def test_an_exception_in_a_hook_propagates_with_a_note(autojump_clock: Any) -> None:
    def broken(message: dict[str, Any], context: Any) -> None:
        raise ValueError("storage is full")

    async with setup() as (llm, client, mcp):
        llm.push(says("hi"))
        with pytest.raises(ValueError, match="storage is full") as info:
            await Chat(client, mcp=mcp, on_assistant_message=broken).chat(
                model="m", messages=[{"role": "user", "content": "x"}]
            )
        assert any("on_assistant_message" in note for note in info.value.__notes__)
        llm.push(says("hi"))
        with pytest.raises(ConfigError, match="return None, Continue"):
            await Chat(client, mcp=mcp, on_assistant_message=lambda m, c: "stop").chat(
                model="m", messages=[{"role": "user", "content": "x"}]
            )


async def test_results_are_converted_and_truncated(autojump_clock: Any) -> None:
    server = McpTestServer("media")
    server.add_tool(
        "picture",
        lambda a, c: {
            "content": [
                {"type": "text", "text": "a red dot"},
                {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"},
                {"type": "resource_link", "uri": "file:///dot.png", "name": "dot.png"},
            ],
            "structuredContent": {"color": "red"},
        },
    )
    server.add_tool("long", lambda a, c: "y" * 500)
    async with setup(server) as (llm, client, mcp):
        llm.push(asks(call("c1", "picture", {}), call("c2", "long", {})), says("seen"))
        chat = Chat(client, mcp=mcp, max_result_chars=100, tool_images="attach")
        result = await chat.chat(model="m", messages=[{"role": "user", "content": "x"}])
        picture, long = tool_messages(llm.requests[1])
        assert picture["content"] == (
            "a red dot\n[image: image/png, 8 bytes]\n[resource link: dot.png <file:///dot.png>]\n"
            '{"color": "red"}'
        )
        assert long["content"] == "y" * 100 + "\n[... truncated: 400 more characters not shown]"
        attached = llm.requests[1].json["messages"][-1]
        assert attached["role"] == "user"
        assert attached["content"][1] == {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
        }
        assert result.messages[-1]["content"] == "seen"


async def test_cancelling_a_chat_cancels_its_tools_and_tells_the_server(
    autojump_clock: Any,
) -> None:
    server = builtin_server()
    async with setup(server) as (llm, client, mcp):
        llm.push(asks(call("c1", "sleep", {"seconds": 1000}), call("c2", "hang", {})))
        chat = Chat(client, mcp=mcp, tool_timeout=None)
        with trio.move_on_after(30) as scope:
            await chat.chat(model="m", messages=[{"role": "user", "content": "x"}])
        assert scope.cancelled_caught
        await trio.sleep(1)
        assert len(server.cancelled) == 2


async def test_streamed_chat_yields_deltas_tool_events_and_the_result(autojump_clock: Any) -> None:
    async with setup() as (llm, client, mcp):
        llm.push(
            SSEReply(
                [
                    SSEChunk(c)
                    for c in completion_chunks(
                        ("Let me", " check."), tool_calls=[call("c1", "add", {"a": 1, "b": 1})]
                    )
                ]
            ),
            SSEReply([SSEChunk(c) for c in completion_chunks(("It is", " 2."))]),
        )
        events: list[ChatEvent] = []
        async with Chat(client, mcp=mcp).stream(
            model="m", messages=[{"role": "user", "content": "1+1?"}]
        ) as stream:
            events.extend([event async for event in stream])
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "TextDelta",
        "TextDelta",
        "ToolStarted",
        "ToolFinished",
        "TurnFinished",
        "TextDelta",
        "TextDelta",
        "ChatFinished",
    ]
    assert [e.text for e in events if isinstance(e, TextDelta)] == [
        "Let me",
        " check.",
        "It is",
        " 2.",
    ]
    started = next(e for e in events if isinstance(e, ToolStarted))
    assert started.arguments == {"a": 1, "b": 1} and started.turn == 1
    finished = next(e for e in events if isinstance(e, ToolFinished))
    assert finished.result.content == '2\n{"sum": 2}'
    assert isinstance(events[4], TurnFinished) and events[4].message["tool_calls"][0]["id"] == "c1"
    final = events[-1]
    assert isinstance(final, ChatFinished) and final.result.content == "It is 2."
    assert final.result.stop_reason == "answered"


async def test_progress_of_mcp_tool_calls_reaches_the_stream_and_on_progress(
    autojump_clock: Any,
) -> None:
    heard: list[ToolProgress] = []
    heard_async: list[ToolProgress] = []

    async def note(event: ToolProgress) -> None:
        await trio.sleep(0)
        heard_async.append(event)

    server = builtin_server()
    async with setup(server) as (llm, client, mcp):
        llm.push(
            SSEReply(completion_chunks((), tool_calls=[call("c1", "progress", {"steps": 3})])),
            SSEReply(completion_chunks(("done",))),
        )
        events: list[ChatEvent] = []
        async with Chat(client, mcp=mcp, on_progress=heard.append).stream(
            model="m", messages=[{"role": "user", "content": "go"}]
        ) as stream:
            events.extend([event async for event in stream])
        kinds = [type(e).__name__ for e in events]
        assert kinds[:5] == [
            "ToolStarted",
            "ToolProgress",
            "ToolProgress",
            "ToolProgress",
            "ToolFinished",
        ]
        progress = [e for e in events if isinstance(e, ToolProgress)]
        assert [(p.progress, p.total, p.message) for p in progress] == [
            (1, 3, "step 1"),
            (2, 3, "step 2"),
            (3, 3, "step 3"),
        ]
        assert {(p.tool_call_id, p.name, p.server, p.turn) for p in progress} == {
            ("c1", "progress", "tools", 1)
        }
        assert heard == progress

        # chat() has no stream: the callback alone hears progress; an async one runs too.
        llm.push(asks(call("c2", "progress", {"steps": 2})), says("done"))
        result = await Chat(client, mcp=mcp, on_progress=note).chat(
            model="m", messages=[{"role": "user", "content": "go"}]
        )
        await trio.sleep(1)
        assert result.tool_calls[0].outcome == "ok"
        assert [(p.tool_call_id, p.progress) for p in heard_async] == [("c2", 1), ("c2", 2)]

        # Without a listener, no progress token is asked for.
        llm.push(asks(call("c3", "progress", {"steps": 2})), says("done"))
        result = await Chat(client, mcp=mcp).chat(
            model="m", messages=[{"role": "user", "content": "go"}]
        )
        assert result.tool_calls[0].outcome == "ok"
        calls = [r.params for r in server.requests if r.method == "tools/call"]
        assert len(calls) == 3
        assert [bool((p or {}).get("_meta", {}).get("progressToken")) for p in calls] == [
            True,
            True,
            False,
        ]


async def test_unavailable_servers_and_limits_on_tools(autojump_clock: Any) -> None:
    async with setup() as (llm, client, mcp):
        chat = Chat(client, mcp=mcp, deny_tools=["crash", "tools/sleep"], allow_tools=["*"])
        names = [t["function"]["name"] for t in chat._tools_for_model(chat.tool_index())]
        assert "crash" not in names and "sleep" not in names and "echo" in names
        llm.push(asks(call("c1", "crash", {})), says("ok"))
        result = await chat.chat(model="m", messages=[{"role": "user", "content": "x"}])
        assert result.tool_calls[0].outcome == "unknown_tool"
        limited = Chat(client, mcp=mcp, servers=["elsewhere"])
        assert limited.tool_index() == {} or len(limited.tool_index()) == 0
        await mcp.remove_server("tools")
        llm.push(asks(call("c1", "echo", {"message": "x"})), says("ok"))
        stale = Chat(
            client, mcp=mcp, custom_tools=[WEATHER], custom_tool_executor=lambda *a: NOT_MINE
        )
        result = await stale.chat(model="m", messages=[{"role": "user", "content": "x"}])
        assert result.tool_calls[0].outcome == "unknown_tool"


async def test_a_server_can_sample_through_the_same_client(autojump_clock: Any) -> None:
    async with open_llm_server() as llm, Client("k", base_url=llm.base_url) as client:
        handler = sampling_handler(client, model="sampler-model")
        async with setup(client_options=ClientOptions(sampling_handler=handler)) as (_, _, mcp):
            llm.push(says("Hi from the sampler"))
            result = await mcp.call_tool("tools", "sample")
            assert result.text == "Hi from the sampler"
            (request,) = llm.requests
            assert request.json["model"] == "sampler-model" and request.json["max_tokens"] == 20
            assert request.json["messages"] == [{"role": "user", "content": "Say hi"}]


async def test_tool_calls_are_telemetry_events(autojump_clock: Any) -> None:
    events: list[telemetry.TelemetryEvent] = []
    with telemetry.subscribe(events.append):
        async with setup() as (llm, client, mcp):
            llm.push(asks(call("c1", "echo", {"message": "t"})), says("ok"))
            await Chat(client, mcp=mcp).chat(model="m", messages=[{"role": "user", "content": "x"}])
    started = [e for e in events if isinstance(e, telemetry.ToolCallStarted)]
    finished = [e for e in events if isinstance(e, telemetry.ToolCallFinished)]
    assert [(e.tool, e.server, e.call_id) for e in started] == [("echo", "tools", "c1")]
    assert [(e.tool, e.outcome) for e in finished] == [("echo", "ok")]


def test_bad_configuration_is_refused() -> None:
    client = Client("k", base_url="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="custom_tool_executor"):
        Chat(client, custom_tools=[WEATHER])
    with pytest.raises(ConfigError, match="max_turns"):
        Chat(client, max_turns=0)
    with pytest.raises(ConfigError, match="not valid"):
        Chat(
            client,
            custom_tools=[
                {"type": "function", "function": {"name": "bad name!", "parameters": {}}}
            ],
            custom_tool_executor=lambda *a: None,
        )


async def test_a_forced_tool_choice_applies_to_the_first_turn_only(autojump_clock: Any) -> None:
    async with setup() as (llm, client, mcp):
        llm.push(asks(call("c1", "echo", {"message": "x"})), says("done"))
        forced = {"type": "function", "function": {"name": "echo"}}
        result = await Chat(client, mcp=mcp).chat(
            model="m", messages=[{"role": "user", "content": "x"}], tool_choice=forced
        )
        assert result.stop_reason == "answered"
        assert llm.requests[0].json["tool_choice"] == forced
        assert llm.requests[1].json["tool_choice"] == "auto"
