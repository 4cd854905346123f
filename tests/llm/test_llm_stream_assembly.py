"""Stream assembly without a network: the assembler on dicts, and SSE bytes through a mock transport."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from opex_trio.errors import StreamError
from opex_trio.llm import (
    Client,
    ContentDelta,
    FinishEvent,
    ReasoningDelta,
    StreamEvent,
    ToolCallDelta,
    Usage,
    UsageEvent,
)
from opex_trio.llm._stream import StreamAssembler
from opex_trio.testing.llm_server import completion_chunks


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, **top: Any
) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [choice], **top}


def feed_all(chunks: list[Any]) -> tuple[list[StreamEvent], StreamAssembler]:
    assembler = StreamAssembler()
    events: list[StreamEvent] = []
    for item in chunks:
        events.extend(assembler.feed(item))
    return events, assembler


def test_content_finish_and_usage() -> None:
    events, assembler = feed_all(completion_chunks(["Hel", "lo"], id="c9", model="m"))
    assert events == [
        ContentDelta("Hel"),
        ContentDelta("lo"),
        FinishEvent("stop"),
        UsageEvent(Usage(prompt_tokens=5, completion_tokens=2, total_tokens=7)),
    ]
    final = assembler.check_complete(done=True)
    assert final.content == "Hello"
    assert final.id == "c9"
    assert final.model == "m"
    assert final.finish_reason == "stop"
    assert final.usage == Usage(prompt_tokens=5, completion_tokens=2, total_tokens=7)
    assert final.message.to_dict() == {"role": "assistant", "content": "Hello"}


def test_openai_style_tool_calls() -> None:
    calls = [
        {"id": "call_a", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_b", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    events, assembler = feed_all(completion_chunks([], tool_calls=calls))
    final = assembler.check_complete(done=True)
    assert [(c.id, c.name, c.arguments) for c in final.tool_calls] == [
        ("call_a", "get_weather", '{"city": "Paris"}'),
        ("call_b", "get_time", "{}"),
    ]
    assert final.content is None
    assert final.finish_reason == "tool_calls"
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert deltas[0] == ToolCallDelta(0, "call_a", "get_weather", "")
    assert deltas[1] == ToolCallDelta(0, None, None, '{"city": "Paris"}')


def llama_cpp_piece(arguments: str, call_id: str = "call__0_get_weather_cmpl-1") -> dict[str, Any]:
    """A chunk as llama-cpp-python's chatml-function-calling handler streams it."""
    return chunk(
        {
            "role": None,
            "content": None,
            "function_call": {"name": "get_weather", "arguments": arguments},
            "tool_calls": [
                {
                    "index": 0,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": arguments},
                }
            ],
        },
        logprobs=None,
    )


def test_repeated_id_and_name_are_not_concatenated() -> None:
    pieces = ["{", ' "', "city", '":', ' "', "Paris", '"', " }", ""]
    chunks = [
        chunk({"role": "assistant", "content": None, "function_call": None, "tool_calls": None})
    ]
    chunks += [llama_cpp_piece(p) for p in pieces]
    chunks.append(chunk({"role": None, "content": None, "tool_calls": None}, "tool_calls"))
    events, assembler = feed_all(chunks)
    final = assembler.check_complete(done=True)
    (call,) = final.tool_calls
    assert call.id == "call__0_get_weather_cmpl-1"
    assert call.name == "get_weather"
    assert call.function.parse_arguments() == {"city": "Paris"}
    # The legacy field is assembled the same way, not left as its last piece.
    assert final.message.raw["function_call"] == {
        "name": "get_weather",
        "arguments": '{ "city": "Paris" }',
    }
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert deltas[0].id == "call__0_get_weather_cmpl-1"
    assert deltas[0].name == "get_weather"
    assert all(d.id is None and d.name is None for d in deltas[1:])


def test_missing_index_gemini_style() -> None:
    chunks = [
        chunk(
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x":'}}
                ],
            }
        ),
        chunk({"tool_calls": [{"function": {"arguments": " 1}"}}]}),
        chunk(
            {
                "tool_calls": [
                    {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}
                ]
            }
        ),
        chunk(
            {
                "tool_calls": [
                    {"id": "c", "function": {"name": "h", "arguments": "{}"}},
                    {"id": "d", "function": {"name": "k", "arguments": "{}"}},
                ]
            }
        ),
        chunk({}, "tool_calls"),
    ]
    _, assembler = feed_all(chunks)
    final = assembler.check_complete(done=True)
    assert [(c.id, c.name, c.arguments) for c in final.tool_calls] == [
        ("a", "f", '{"x": 1}'),
        ("b", "g", "{}"),
        ("c", "h", "{}"),
        ("d", "k", "{}"),
    ]


def test_same_index_with_new_id_starts_a_new_call() -> None:
    chunks = [
        chunk(
            {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}]}
        ),
        chunk(
            {"tool_calls": [{"index": 0, "id": "b", "function": {"name": "g", "arguments": "{"}}]}
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}),
        chunk({}, "tool_calls"),
    ]
    _, assembler = feed_all(chunks)
    calls = assembler.check_complete(done=True).tool_calls
    assert [(c.id, c.name, c.arguments) for c in calls] == [("a", "f", "{}"), ("b", "g", "{}")]


def test_a_split_name_is_joined() -> None:
    chunks = [
        chunk(
            {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "get_", "arguments": ""}}]}
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"name": "weather", "arguments": "{}"}}]}),
        chunk({}, "tool_calls"),
    ]
    _, assembler = feed_all(chunks)
    assert assembler.check_complete(done=True).tool_calls[0].name == "get_weather"


def test_several_choices_and_reasoning() -> None:
    chunks = [
        {
            "id": "x",
            "choices": [
                {"index": 0, "delta": {"reasoning": "hmm"}},
                {"index": 1, "delta": {"content": "B"}},
            ],
        },
        {"id": "x", "choices": [{"index": 0, "delta": {"content": "A", "refusal": None}}]},
        {
            "id": "x",
            "choices": [
                {"index": 1, "delta": {}, "finish_reason": "stop"},
                {"index": 0, "delta": {}, "finish_reason": "length"},
            ],
        },
    ]
    events, assembler = feed_all(chunks)
    assert events == [
        ReasoningDelta("hmm", 0),
        ContentDelta("B", 1),
        ContentDelta("A", 0),
        FinishEvent("stop", 1),
        FinishEvent("length", 0),
    ]
    final = assembler.check_complete(done=True)
    assert [(c.index, c.message.content, c.finish_reason) for c in final.choices] == [
        (0, "A", "length"),
        (1, "B", "stop"),
    ]
    assert final.choices[0].message.raw["reasoning"] == "hmm"


def test_unknown_delta_fields_are_folded_in() -> None:
    chunks = [
        chunk({"content": "x", "annotations": [{"a": 1}], "refusal": "no"}),
        chunk({"annotations": [{"a": 2}], "refusal": "pe", "audio": {"id": "1"}}, "stop"),
    ]
    _, assembler = feed_all(chunks)
    raw = assembler.check_complete(done=True).message.raw
    assert raw["annotations"] == [{"a": 1}, {"a": 2}]
    assert raw["refusal"] == "nope"
    assert raw["audio"] == {"id": "1"}


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        ({"error": {"code": 502, "message": "upstream died"}}, 502),
        (
            {
                "id": "x",
                "choices": [
                    {
                        "index": 0,
                        "delta": {},
                        "finish_reason": "error",
                        "error": {"code": 429, "message": "limit"},
                    }
                ],
            },
            429,
        ),
        ({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "error"}]}, None),
    ],
)
def test_error_chunks_raise_with_the_partial_message(bad: dict[str, Any], code: int | None) -> None:
    assembler = StreamAssembler()
    assembler.feed(chunk({"content": "partial "}))
    with pytest.raises(StreamError) as info:
        assembler.feed(bad)
    assert info.value.code == code
    assert info.value.body == bad
    assert info.value.partial is not None
    assert info.value.partial.content == "partial "


@pytest.mark.parametrize(
    "bad",
    [
        [],
        "text",
        {"choices": "x"},
        {"choices": [1]},
        {"choices": [{"delta": "x"}]},
        {"choices": [{"delta": {"content": 5}}]},
        {"choices": [{"delta": {"tool_calls": {"index": 0}}}]},
        {"choices": [{"delta": {"tool_calls": [5]}}]},
        {"choices": [{"delta": {"tool_calls": [{"function": "f"}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"function": {"arguments": 5}}]}}]},
        {"choices": [{"delta": {"function_call": "f"}}]},
        {"choices": [{"index": "zero", "delta": {}}]},
        {"choices": [], "usage": "lots"},
    ],
)
def test_malformed_chunks_raise_stream_error(bad: Any) -> None:
    with pytest.raises(StreamError):
        StreamAssembler().feed(bad)


def test_end_without_done() -> None:
    unfinished = StreamAssembler()
    unfinished.feed(chunk({"content": "half"}))
    with pytest.raises(StreamError, match=r"before \[DONE\]") as info:
        unfinished.check_complete(done=False)
    assert info.value.partial is not None
    assert info.value.partial.content == "half"
    with pytest.raises(StreamError):
        StreamAssembler().check_complete(done=False)
    finished = StreamAssembler()
    finished.feed(chunk({"content": "whole"}, "stop"))
    assert finished.check_complete(done=False).content == "whole"


# --- SSE bytes, split every which way, through the real client and its SSE reader ---

BASE = "http://llm.test/v1"


def encode_event(data: dict[str, Any], style: int) -> bytes:
    if style == 1:  # data over several lines, as the SSE spec allows
        lines = json.dumps(data, indent=1).split("\n")
        return ("".join(f"data: {line}\n" for line in lines) + "\n").encode()
    if style == 2:  # CRLF line ends and no space after the colon
        return f"data:{json.dumps(data)}\r\n\r\n".encode()
    if style == 3:  # a comment line first, as OpenRouter sends while it waits
        return b": OPENROUTER PROCESSING\n\n" + f"data: {json.dumps(data)}\n\n".encode()
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


async def stream_events(pieces: list[bytes]) -> tuple[list[StreamEvent], Any]:
    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            await trio.lowlevel.checkpoint()
            yield piece

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    async with (
        httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http,
        Client(None, base_url=BASE, http_client=http) as client,
        client.stream_chat(model="m", messages=[]) as stream,
    ):
        events = [event async for event in stream]
    return events, stream.final


text_pieces = st.lists(st.text(min_size=1, max_size=8), max_size=6)
tool_calls = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.text("abc123", min_size=1, max_size=5),
            "function": st.fixed_dictionaries(
                {"name": st.text("fgh_", min_size=1, max_size=6), "arguments": st.text(max_size=10)}
            ),
        }
    ),
    max_size=2,
    unique_by=lambda call: str(call["id"]),
)


@pytest.mark.fuzz
@settings(deadline=None)
@given(
    pieces=text_pieces,
    calls=tool_calls,
    styles=st.lists(st.integers(0, 3), min_size=1),
    cuts=st.lists(st.integers(0, 10_000), max_size=40),
)
def test_any_split_of_the_bytes_gives_the_same_events(
    pieces: list[str], calls: list[dict[str, Any]], styles: list[int], cuts: list[int]
) -> None:
    chunks = completion_chunks(pieces, tool_calls=calls)
    data = b"".join(encode_event(c, styles[i % len(styles)]) for i, c in enumerate(chunks))
    data += b"data: [DONE]\n\n"
    expected, assembler = feed_all(chunks)

    whole_events, whole_final = trio.run(stream_events, [data])
    split_events, split_final = trio.run(stream_events, split(data, cuts))
    bytewise_events, _ = (
        trio.run(stream_events, [data[i : i + 1] for i in range(len(data))])
        if len(data) < 3000
        else (expected, None)
    )

    assert whole_events == expected
    assert split_events == expected
    assert bytewise_events == expected
    assert whole_final == split_final == assembler.check_complete(done=True)
    assert split_final.content == ("".join(pieces) if pieces or not calls else None)


@pytest.mark.fuzz
@given(
    pieces=text_pieces,
    calls=tool_calls,
    repeat_role=st.booleans(),
    role=st.sampled_from([None, "assistant", "tool"]),
)
def test_the_short_way_for_text_chunks_agrees_with_the_long_way(
    pieces: list[str], calls: list[dict[str, Any]], repeat_role: bool, role: str | None
) -> None:
    chunks = completion_chunks(pieces, tool_calls=calls)
    if repeat_role:
        for item in chunks[1:]:
            for choice in item["choices"]:
                choice["delta"]["role"] = role
    fast, slow = StreamAssembler(), StreamAssembler()
    fast_events = [event for item in chunks for event in fast.feed(item)]
    slow_events = [event for item in chunks for event in slow.feed_long(item)]
    assert fast_events == slow_events
    assert fast.check_complete(done=True) == slow.check_complete(done=True)
    assert (
        fast.check_complete(done=True).message.role == slow.check_complete(done=True).message.role
    )


# --- any chunk, however malformed: a StreamError or events, and what was assembled stays readable ---

leaf = (
    st.none()
    | st.booleans()
    | st.integers(-2, 3)
    | st.floats(allow_nan=False)
    | st.text(max_size=4)
    | st.sampled_from(["stop", "error", "tool_calls", "assistant", "function"])
)
anything = st.recursive(
    leaf,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "error", "index", "id", "name"]), inner, max_size=3)
    ),
    max_leaves=8,
)
function_piece = anything | st.fixed_dictionaries(
    {}, optional={"name": anything, "arguments": anything, "extra": anything}
)
tool_piece = anything | st.fixed_dictionaries(
    {},
    optional={
        "index": st.integers(0, 2) | st.lists(st.integers(0, 1), max_size=1) | anything,
        "id": anything,
        "type": anything,
        "function": function_piece,
        "extra": anything,
    },
)
delta = anything | st.fixed_dictionaries(
    {},
    optional={
        "content": anything,
        "role": anything,
        "reasoning": anything,
        "refusal": anything,
        "tool_calls": anything | st.lists(tool_piece, max_size=3),
        "function_call": function_piece,
    },
)
choice = anything | st.fixed_dictionaries(
    {},
    optional={
        "index": st.integers(0, 2) | st.lists(st.integers(0, 1), max_size=1) | anything,
        "delta": delta,
        "finish_reason": anything,
        "error": anything,
        "logprobs": anything,
    },
)
any_chunk = anything | st.fixed_dictionaries(
    {},
    optional={
        "id": anything,
        "model": anything,
        "created": anything,
        "choices": anything | st.lists(choice, max_size=3),
        "usage": anything,
        "error": anything,
    },
)


@pytest.mark.fuzz
@settings(deadline=None)
@given(chunks=st.lists(any_chunk, max_size=8), done=st.booleans())
def test_any_chunks_give_events_or_a_stream_error_and_a_readable_partial(
    chunks: list[Any], done: bool
) -> None:
    assembler = StreamAssembler()
    for item in chunks:
        failure: StreamError | None = None
        try:
            events = assembler.feed(item)
        except StreamError as error:
            failure, events = error, []
        assert all(isinstance(event, StreamEvent) for event in events)
        if failure is not None:
            assert failure.partial is None or failure.partial == assembler.completion()
        partial = assembler.partial()
        assert partial is None if not assembler.chunks else partial == assembler.completion()
    final: Any = None
    try:
        final = assembler.check_complete(done)
    except StreamError as error:
        failure = error
    if final is None:
        assert not done
        assert failure is not None
        assert failure.partial == assembler.partial()
    else:
        assert final == assembler.completion()
