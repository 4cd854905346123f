"""Sampling with tools (SEP-1577): the capability, the checks, the OpenAI format, a real tool loop.

The conversion is checked on the specification's own example and by round
trips; the end-to-end test runs a server on the official ``mcp`` SDK whose
tool runs its own tool loop through the client's model, the scripted LLM
server, which calls the server's tool once and then answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from opex_trio.agent._sampling_format import (
    openai_messages,
    openai_tool_choice,
    openai_tools,
    sampling_messages,
)
from opex_trio.agent.sampling import sampling_handler
from opex_trio.errors import ConfigError, McpError
from opex_trio.llm.client import Client
from opex_trio.mcp.client import ClientOptions, McpClient
from opex_trio.protocol.content import load_sampling_block
from opex_trio.protocol.types import (
    CreateMessageParams,
    CreateMessageResult,
    SamplingMessage,
    TextContent,
    ToolResultContent,
    ToolUseContent,
    UnknownContent,
    sampling_problem,
)
from opex_trio.protocol.versions import Era
from opex_trio.testing.llm_server import JSONReply, completion, open_llm_server
from opex_trio.testing.mcp_server import McpTestServer, ToolContext, builtin_server
from opex_trio.transports.stdio import StdioParameters, open_stdio_transport
from tests.mcp.support import BOUND
from tests.protocol.conftest import require_spec

SERVER_SCRIPT = Path(__file__).with_name("sampling_tools_server.py")

# The specification's follow-up request, with the tool results.
SPEC_FOLLOW_UP: dict[str, Any] = {
    "messages": [
        {"role": "user", "content": {"type": "text", "text": "Weather in Paris and London?"}},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_a", "name": "get_weather",
                 "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_b", "name": "get_weather",
                 "input": {"city": "London"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "toolUseId": "call_a",
                 "content": [{"type": "text", "text": "18C, cloudy"}]},
                {"type": "tool_result", "toolUseId": "call_b",
                 "content": [{"type": "text", "text": "15C, rain"}], "isError": False},
            ],
        },
    ],
    "tools": [
        {
            "name": "get_weather",
            "description": "Get current weather for a city",
            "inputSchema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ],
    "toolChoice": {"mode": "required"},
    "systemPrompt": "Be brief.",
    "maxTokens": 1000,
}  # fmt: skip


def test_tool_blocks_are_typed_and_written_back_as_they_came() -> None:
    params = CreateMessageParams.from_dict(SPEC_FOLLOW_UP)
    uses = params.messages[1].content
    assert isinstance(uses, tuple)
    assert uses[0] == ToolUseContent("call_a", "get_weather", {"city": "Paris"})
    results = params.messages[2].content
    assert isinstance(results, tuple) and isinstance(results[1], ToolResultContent)
    assert results[1].tool_use_id == "call_b" and results[1].is_error is False
    assert results[1].content == (TextContent("15C, rain"),)
    assert params.to_dict() == SPEC_FOLLOW_UP
    assert sampling_problem(params) is None


def test_the_spec_example_in_the_openai_format() -> None:
    params = CreateMessageParams.from_dict(SPEC_FOLLOW_UP)
    assert openai_messages(params) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris and London?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_a", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
                {"id": "call_b", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "London"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "18C, cloudy"},
        {"role": "tool", "tool_call_id": "call_b", "content": "15C, rain"},
    ]  # fmt: skip
    (tool,) = openai_tools(params) or []
    assert tool["type"] == "function"
    assert tool["function"]["name"] == "get_weather"
    assert tool["function"]["description"] == "Get current weather for a city"
    assert tool["function"]["parameters"]["required"] == ["city"]
    for mode in ("auto", "required", "none"):
        chosen = CreateMessageParams.from_dict({**SPEC_FOLLOW_UP, "toolChoice": {"mode": mode}})
        assert openai_tool_choice(chosen) == mode
    assert openai_tool_choice(CreateMessageParams.from_dict({**SPEC_FOLLOW_UP, "toolChoice": {}}))
    with pytest.raises(McpError, match="toolChoice mode") as info:
        openai_tool_choice(
            CreateMessageParams.from_dict({**SPEC_FOLLOW_UP, "toolChoice": {"mode": "any"}})
        )
    assert info.value.code == -32602


def test_broken_tool_histories_are_named() -> None:
    def problem(*messages: dict[str, Any]) -> str | None:
        return sampling_problem(
            CreateMessageParams.from_dict({"messages": list(messages), "maxTokens": 5})
        )

    use = {"role": "assistant", "content": [
        {"type": "tool_use", "id": "u1", "name": "t", "input": {}},
        {"type": "tool_use", "id": "u2", "name": "t", "input": {}},
    ]}  # fmt: skip

    def result(*ids: str) -> dict[str, Any]:
        return {"role": "user", "content": [
            {"type": "tool_result", "toolUseId": i, "content": []} for i in ids
        ]}  # fmt: skip

    text = {"type": "text", "text": "hi"}
    assert problem(use, result("u2", "u1")) is None
    assert problem(use, result("u1")) == "message 1 does not answer the tool use(s) u2"
    assert problem(use, {"role": "user", "content": text}) == (
        "message 1 does not answer the tool use(s) u1, u2"
    )
    mixed = {"role": "user", "content": [text, *result("u1", "u2")["content"]]}
    assert problem(use, mixed) == "message 1 mixes tool results with other content"
    assert problem(result("zz")) == "message 0 has results for no tool use: zz"
    assert problem(use) == "the tool use(s) u1, u2 of the last message have no results"


def test_the_specifications_sampling_examples_are_typed_and_convert() -> None:
    examples = require_spec() / "schema" / "2026-07-28" / "examples"

    def load(folder: str) -> list[dict[str, Any]]:
        files = sorted((examples / folder).glob("*.json"))
        assert files, folder
        return [json.loads(f.read_text()) for f in files]

    def untyped(blocks: Any) -> list[Any]:
        blocks = blocks if isinstance(blocks, tuple) else (blocks,)
        return [b for b in blocks if isinstance(b, UnknownContent)]

    for data in load("CreateMessageRequestParams"):
        params = CreateMessageParams.from_dict(data)
        assert params.to_dict() == data
        assert all(not untyped(m.content) for m in params.messages)
        assert sampling_problem(params) is None
        converted = openai_messages(params)
        assert sampling_messages(converted)[1] == [
            SamplingMessage(m.role, m.content if isinstance(m.content, tuple) else (m.content,))
            for m in params.messages
        ]
    for data in load("CreateMessageResult"):
        result = CreateMessageResult.from_dict(data)
        assert result.to_dict() == data and not untyped(result.content)
    for data in load("SamplingMessage"):
        message = SamplingMessage.from_dict(data)
        assert message.to_dict() == data and not untyped(message.content)
    (use,) = load("ToolUseContent")
    assert isinstance(load_sampling_block(use), ToolUseContent)
    (result_block,) = load("ToolResultContent")
    loaded = load_sampling_block(result_block)
    assert isinstance(loaded, ToolResultContent) and loaded.to_dict() == result_block


# -- round trips


_words = st.text(st.characters(codec="utf-8"), max_size=12)
_ids = st.text("abcdefgh0123456789_", min_size=1, max_size=6)
_inputs = st.dictionaries(
    st.text("abcxyz", min_size=1, max_size=4),
    st.none() | st.booleans() | st.integers(-5, 5) | _words,
    max_size=3,
)


@st.composite
def _conversations(draw: st.DrawFn) -> list[SamplingMessage]:
    messages = [SamplingMessage("user", (TextContent(draw(_words)),))]
    for _ in range(draw(st.integers(0, 3))):
        ids = draw(st.lists(_ids, min_size=1, max_size=3, unique=True))
        said = draw(st.none() | _words.filter(bool))
        blocks: list[Any] = [] if said is None else [TextContent(said)]
        blocks += [ToolUseContent(i, draw(_ids), draw(_inputs)) for i in ids]
        messages.append(SamplingMessage("assistant", tuple(blocks)))
        answers = [
            ToolResultContent(i, (TextContent(draw(_words)),)) for i in draw(st.permutations(ids))
        ]
        messages.append(SamplingMessage("user", tuple(answers)))
        if draw(st.booleans()):
            messages.append(SamplingMessage("assistant", (TextContent(draw(_words.filter(bool))),)))
            messages.append(SamplingMessage("user", (TextContent(draw(_words)),)))
    return messages


@given(_conversations(), st.none() | _words.filter(bool))
def test_a_tool_conversation_survives_the_openai_format(
    messages: list[SamplingMessage], system: str | None
) -> None:
    params = CreateMessageParams(tuple(messages), 100, system_prompt=system)
    assert sampling_problem(params) is None
    converted = openai_messages(params)
    json.dumps(converted)  # plain JSON, as a request body is
    back_system, back = sampling_messages(converted)
    assert back_system == system
    assert back == messages
    # And the OpenAI side is stable: converting back again gives the same messages.
    assert openai_messages(CreateMessageParams(tuple(back), 100, system_prompt=system)) == converted


# -- the capability


async def _plain(params: CreateMessageParams) -> dict[str, Any]:
    return {"role": "assistant", "content": {"type": "text", "text": "x"}, "model": "m"}


def test_sampling_tools_are_declared_only_when_the_handler_can() -> None:
    stock = sampling_handler(Client("k", base_url="http://127.0.0.1:9"), model="m")
    assert ClientOptions(sampling_handler=stock).capabilities() == {"sampling": {"tools": {}}}
    assert ClientOptions(sampling_handler=_plain).capabilities() == {"sampling": {}}
    both = ClientOptions(sampling_handler=_plain, sampling_features=("tools", "context"))
    assert both.capabilities() == {"sampling": {"tools": {}, "context": {}}}
    # Told otherwise, the stock handler declares nothing more than plain sampling.
    assert ClientOptions(sampling_handler=stock, sampling_features=()).capabilities() == {
        "sampling": {}
    }
    assert ClientOptions(sampling_features=("tools",)).capabilities() == {}
    with pytest.raises(ConfigError, match="sampling_features"):
        ClientOptions(sampling_features=("tools", "images"))


def _asking_server(request: dict[str, Any]) -> McpTestServer:
    server = builtin_server()

    @server.tool(name="ask")
    async def ask(args: Any, ctx: ToolContext) -> str:
        """Send the test's sampling request and return the answer as JSON."""
        return json.dumps(await ctx.request("sampling/createMessage", request))

    return server


async def _ask(request: dict[str, Any], options: ClientOptions) -> tuple[str, bool | None]:
    server = _asking_server(request)
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            async with McpClient(server.in_process(nursery), name="mem", options=options) as client:
                result = await client.call_tool("ask")
            nursery.cancel_scope.cancel()
    return result.text, result.is_error


async def test_a_request_with_tools_is_refused_without_the_capability() -> None:
    seen: list[CreateMessageParams] = []

    async def plain(params: CreateMessageParams) -> dict[str, Any]:
        seen.append(params)
        return await _plain(params)

    options = ClientOptions(sampling_handler=plain)
    base = {"messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}],
            "maxTokens": 10}  # fmt: skip
    for extra in ({"tools": SPEC_FOLLOW_UP["tools"]}, {"toolChoice": {"mode": "none"}}):
        text, is_error = await _ask({**base, **extra}, options)
        assert is_error
        assert "error -32602" in text and "sampling.tools" in text
    # A history that breaks the rules of tool use is refused too, by a client that declares tools.
    declared = ClientOptions(sampling_handler=plain, sampling_features=("tools",))
    broken = {**SPEC_FOLLOW_UP, "messages": SPEC_FOLLOW_UP["messages"][:2]}
    text, is_error = await _ask(broken, declared)
    assert is_error and "error -32602" in text and "call_a, call_b" in text
    assert seen == []  # the handler never saw a refused request
    text, is_error = await _ask({**base, "includeContext": "thisServer"}, options)
    assert not is_error and seen[0].include_context == "thisServer"


# -- the stock handler, end to end


def _tool_call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)}}  # fmt: skip


async def test_the_stock_handler_answers_with_tool_uses() -> None:
    async with open_llm_server() as llm, Client("k", base_url=llm.base_url) as client:
        handler = sampling_handler(client, model="sampler")
        llm.push(
            JSONReply(completion("Let me look.", tool_calls=[
                _tool_call("c1", "get_weather", {"city": "Oslo"}),
                _tool_call("c2", "get_weather", "not an object"),
            ], finish_reason="tool_calls")),
            JSONReply(completion("Cold.")),
        )  # fmt: skip
        first = await handler(CreateMessageParams.from_dict(SPEC_FOLLOW_UP))
        plain = await handler(CreateMessageParams.from_dict(
            {"messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}],
             "maxTokens": 7}
        ))  # fmt: skip
    assert isinstance(first, CreateMessageResult)
    assert first.stop_reason == "toolUse" and first.model == "scripted-model"
    assert first.content == (
        TextContent("Let me look."),
        ToolUseContent("c1", "get_weather", {"city": "Oslo"}),
        ToolUseContent("c2", "get_weather", {"_invalid_arguments": '"not an object"'}),
    )
    # Without tools, one text block, as every revision of the protocol reads it.
    assert plain.content == TextContent("Cold.") and plain.stop_reason == "endTurn"
    asked, simple = (r.json for r in llm.requests)
    assert asked["tool_choice"] == "required"
    assert [t["function"]["name"] for t in asked["tools"]] == ["get_weather"]
    assert asked["max_tokens"] == 1000
    assert [m["role"] for m in asked["messages"]] == ["system", "user", "assistant", "tool", "tool"]
    assert "tools" not in simple and "tool_choice" not in simple


async def test_a_server_runs_its_tool_loop_through_the_clients_model(peers_python: str) -> None:
    async with open_llm_server() as llm, Client("k", base_url=llm.base_url) as client:
        llm.push(
            JSONReply(completion(None, tool_calls=[
                _tool_call("w1", "get_weather", {"city": "Lima"})
            ], finish_reason="tool_calls")),
            JSONReply(completion("Sunny in Lima, 14 degrees.")),
        )  # fmt: skip
        # The server asks for sampling with a request of its own, which only
        # the legacy era has (a modern server asks through input_required).
        options = ClientOptions(
            sampling_handler=sampling_handler(client, model="loop-model"), era=Era.LEGACY
        )
        params = StdioParameters(peers_python, [str(SERVER_SCRIPT)], name="sdk")
        with trio.fail_after(BOUND):
            async with McpClient(
                lambda: open_stdio_transport(params), name="sdk", options=options
            ) as mcp:
                result = await mcp.call_tool("forecast", {"city": "Lima"})
    assert not result.is_error, result.text
    assert result.text.splitlines() == [
        "Sunny in Lima, 14 degrees.",
        'ran get_weather {"city": "Lima"}',
    ]
    first, second = (r.json for r in llm.requests)
    assert first["model"] == "loop-model" and first["tool_choice"] == "auto"
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert first["messages"] == [
        {"role": "system", "content": "Use the tool."},
        {"role": "user", "content": "What is the weather in Lima?"},
    ]
    # The server's tool result reached the model as a tool message.
    assert second["messages"][2:] == [
        {"role": "assistant", "content": None,
         "tool_calls": [_tool_call("w1", "get_weather", {"city": "Lima"})]},
        {"role": "tool", "tool_call_id": "w1", "content": "14 degrees and sunny in Lima"},
    ]  # fmt: skip
