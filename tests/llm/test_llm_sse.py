"""The stream's event reader against the scripted server: line endings, pieces, odd framing.

The server sends each body either in one write or one byte at a time (every
byte its own read on the client), so every place a line or an event can be
cut is crossed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from opex_trio.errors import StreamError
from opex_trio.llm import ContentDelta, FinishEvent
from opex_trio.testing.llm_server import LLMTestServer, SSEReply
from tests.llm.llm_support import USER, make_client

BOUND = 600


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {"id": "c1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return json.dumps(body).encode()


def stream_body(newline: bytes) -> bytes:
    lines = [
        b"\xef\xbb\xbf: a comment after the byte order mark",
        b"",
        b"data:" + chunk({"role": "assistant", "content": "café"}),
        b"",
        b"event: message",
        b"id: 3",
        b"retry: 10",
        b'data: {"id": "c1", "choices": [{"index": 0,',
        b'data:  "delta": {"content": " two lines"}, "finish_reason": null}]}',
        b"",
        b"data",  # a field without a colon: an empty data line, skipped
        b"",
        b"data: " + chunk({}, "stop"),
        b"",
        b"data: [DONE]",
        b"",
    ]
    return newline.join(lines) + newline


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
@pytest.mark.parametrize("trickle", [0.0, 0.001], ids=["one write", "byte by byte"])
async def test_line_endings_and_pieces(
    autojump_clock: MockClock, llm_server: LLMTestServer, newline: bytes, trickle: float
) -> None:
    llm_server.push(SSEReply([stream_body(newline)], done=False, trickle=trickle))
    events = []
    with trio.fail_after(BOUND):
        async with (
            make_client(llm_server) as client,
            client.stream_chat(model="m", messages=USER) as stream,
        ):
            events = [event async for event in stream]
    assert events == [ContentDelta("café"), ContentDelta(" two lines"), FinishEvent("stop")]
    assert stream.final is not None
    assert stream.final.content == "café two lines"


async def test_a_multibyte_character_cut_between_reads(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    text = "日本語 ✓"
    body = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]}
    raw = b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"
    assert text.encode() in raw  # UTF-8 on the wire, not escapes
    llm_server.push(SSEReply([raw], trickle=0.001))
    with trio.fail_after(BOUND):
        async with (
            make_client(llm_server) as client,
            client.stream_chat(model="m", messages=USER) as stream,
        ):
            final = await stream.get_final_completion()
    assert final.content == text


async def test_an_event_cut_off_by_the_end_of_the_body_is_dropped(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    # The finish event lacks its blank line, so it never completes.
    body = b"data: " + chunk({"content": "partial"}) + b"\n\ndata: " + chunk({}, "stop") + b"\n"
    llm_server.push(SSEReply([body], done=False))
    with trio.fail_after(BOUND):
        async with (
            make_client(llm_server) as client,
            client.stream_chat(model="m", messages=USER) as stream,
        ):
            with pytest.raises(StreamError, match="ended before \\[DONE\\]") as info:
                await stream.get_final_completion()
    assert info.value.partial is not None
    assert info.value.partial.content == "partial"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'data:   {"choices": []}  ', None),  # whitespace around the value: still JSON
        (b'data: {"choices": []} trailing', "not JSON"),
        (b"data: {", "not JSON"),
        (b"data: null", "not an object"),
    ],
)
async def test_event_data_that_is_not_one_clean_json_value(
    autojump_clock: MockClock, llm_server: LLMTestServer, data: bytes, expected: str | None
) -> None:
    body = b"data: " + chunk({"content": "a"}) + b"\n\n" + data + b"\n\n"
    body += b"data: " + chunk({}, "stop") + b"\n\n"
    llm_server.push(SSEReply([body]))
    with trio.fail_after(BOUND):
        async with (
            make_client(llm_server) as client,
            client.stream_chat(model="m", messages=USER) as stream,
        ):
            if expected is None:
                assert (await stream.get_final_completion()).content == "a"
            else:
                with pytest.raises(StreamError, match=expected) as info:
                    await stream.get_final_completion()
                assert info.value.partial is not None
                assert info.value.partial.content == "a"
