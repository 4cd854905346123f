"""Every attempt has a deadline by default: a non-streamed response as a whole, a stream between events.

The scripted server on 127.0.0.1 sends its body one byte at a time, so each
read of the connection returns within a second and the per-read network
timeout never fires; only the attempt's own deadline stops it. All in virtual
time (``autojump_clock``), with exact ``trio.current_time()`` checks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from opex_trio.errors import APITimeoutError, ConfigError, StreamError
from opex_trio.llm import ChatStream, Client, ContentDelta, RetryPolicy
from opex_trio.llm.client import DEFAULT_EVENT_TIMEOUT, DEFAULT_RESPONSE_TIMEOUT
from opex_trio.testing.llm_server import (
    JSONReply,
    LLMTestServer,
    SSEReply,
    completion,
    completion_chunks,
)
from tests.llm.llm_support import USER, arrivals, make_client

BOUND = 10_000  # virtual seconds: far past every deadline here, and a hang still fails


def sse_bytes(chunk: Any) -> bytes:
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


async def read_texts(stream: ChatStream, seen: list[tuple[str, float]]) -> None:
    """Read ``stream``, noting each piece of text and when it came."""
    async for event in stream:
        if isinstance(event, ContentDelta):
            seen.append((event.text, trio.current_time()))  # noqa: PERF401  (the time of each)


def test_the_defaults() -> None:
    client = Client(None)
    assert client.response_timeout == DEFAULT_RESPONSE_TIMEOUT == 600.0
    assert client.event_timeout == DEFAULT_EVENT_TIMEOUT == 300.0
    assert client.total_timeout is None


@pytest.mark.parametrize("name", ["response_timeout", "event_timeout"])
@pytest.mark.parametrize("value", [0, -1.0, "10", True])
def test_bad_deadlines_are_config_errors(name: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=name):
        Client(None, **{name: value})


async def test_a_trickled_response_runs_into_the_default_deadline_on_every_attempt(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    body = completion("x" * 1000)  # over 1,000 bytes at one byte a second
    llm_server.push(*[JSONReply(body, trickle=1.0)] * 4)
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            with pytest.raises(APITimeoutError, match="response timeout of 600 s") as info:
                await client.chat_completion(model="m", messages=USER)
    # Each attempt gets 600 s, then the policy waits 1, 2, 4 s as after a network timeout.
    assert arrivals(llm_server) == [0.0, 601.0, 1203.0, 1807.0]
    assert trio.current_time() == 2407.0
    assert info.value.attempts == 4


async def test_the_response_deadline_covers_the_whole_body_not_each_read(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    body = completion("slow but steady")
    size = len(json.dumps(body, separators=(",", ":")))
    llm_server.push(JSONReply(body, trickle=1.0), JSONReply(body, trickle=1.0))
    with trio.fail_after(BOUND):
        async with make_client(
            llm_server, response_timeout=size + 0.5, retry=RetryPolicy(max_retries=0)
        ) as client:
            result = await client.chat_completion(model="m", messages=USER)
            assert result.content == "slow but steady"
            assert trio.current_time() == size
        async with make_client(
            llm_server, response_timeout=size - 0.5, retry=RetryPolicy(max_retries=0)
        ) as client:
            start = trio.current_time()
            with pytest.raises(APITimeoutError):
                await client.chat_completion(model="m", messages=USER)
            assert trio.current_time() == start + size - 0.5


async def test_no_response_deadline_when_turned_off(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    body = completion("x" * 1000)
    size = len(json.dumps(body, separators=(",", ":")))
    llm_server.push(JSONReply(body, trickle=1.0))
    with trio.fail_after(BOUND):
        async with make_client(llm_server, response_timeout=None) as client:
            result = await client.chat_completion(model="m", messages=USER)
    assert result.content == "x" * 1000
    assert trio.current_time() == size


async def test_a_stream_with_slow_events_is_bounded_per_event_not_in_total(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    # Events of about 150 bytes at one byte a second: each about 150 s after the last.
    chunks = completion_chunks([f" piece{i}" for i in range(6)])
    llm_server.push(SSEReply(chunks, trickle=1.0))
    with trio.fail_after(BOUND):
        async with (
            make_client(llm_server) as client,
            client.stream_chat(model="m", messages=USER) as stream,
        ):
            final = await stream.get_final_completion()
    assert final.content == "".join(f" piece{i}" for i in range(6))
    total = sum(len(sse_bytes(chunk)) for chunk in chunks) + len(b"data: [DONE]\n\n")
    assert total > DEFAULT_EVENT_TIMEOUT * 3
    assert trio.current_time() == total


async def test_a_stream_stalling_after_its_first_event_raises_at_the_event_deadline(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    chunks = completion_chunks(["hello", "y" * 400])  # the third event takes over 400 s
    llm_server.push(SSEReply(chunks, trickle=1.0))
    second_done = len(sse_bytes(chunks[0])) + len(sse_bytes(chunks[1]))
    seen: list[tuple[str, float]] = []
    with trio.fail_after(BOUND):
        async with (
            make_client(llm_server) as client,
            client.stream_chat(model="m", messages=USER) as stream,
        ):
            with pytest.raises(StreamError, match="event timeout of 300 s") as info:
                await read_texts(stream, seen)
    assert seen == [("hello", second_done)]
    assert trio.current_time() == second_done + DEFAULT_EVENT_TIMEOUT
    assert info.value.partial is not None
    assert info.value.partial.content == "hello"
    assert len(llm_server.requests) == 1  # nothing is retried once an event was delivered


async def test_a_stream_whose_first_event_is_too_slow_is_retried_then_times_out(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    slow_first = SSEReply(completion_chunks(["z" * 400])[1:], trickle=1.0)
    llm_server.push(slow_first, slow_first)
    with trio.fail_after(BOUND):
        async with make_client(
            llm_server, event_timeout=120.0, retry=RetryPolicy(max_retries=1, jitter=0)
        ) as client:
            with pytest.raises(APITimeoutError, match="event timeout of 120 s") as info:
                async with client.stream_chat(model="m", messages=USER):
                    pass
    assert arrivals(llm_server) == [0.0, 121.0]
    assert trio.current_time() == 241.0
    assert info.value.attempts == 2


async def test_the_event_deadline_counts_the_wait_for_headers(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(SSEReply(completion_chunks(), delay=50.0))
    with trio.fail_after(BOUND):
        async with make_client(
            llm_server, event_timeout=40.0, retry=RetryPolicy(max_retries=0)
        ) as client:
            with pytest.raises(APITimeoutError, match="event timeout of 40 s"):
                async with client.stream_chat(model="m", messages=USER):
                    pass
    assert trio.current_time() == 40.0


async def test_time_the_program_spends_between_events_does_not_count(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(SSEReply(completion_chunks(["a", "b", "c"])))
    texts = []
    with trio.fail_after(BOUND):
        async with (
            make_client(llm_server, event_timeout=10.0) as client,
            client.stream_chat(model="m", messages=USER) as stream,
        ):
            async for event in stream:
                await trio.sleep(100.0)
                if isinstance(event, ContentDelta):
                    texts.append(event.text)
    assert texts == ["a", "b", "c"]
    assert stream.final is not None


async def test_keep_alive_comments_do_not_hold_a_stream_open(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    chunks = completion_chunks(["first"])
    llm_server.push(SSEReply([*chunks[:2], *[b": keep-alive\n\n"] * 100, *chunks[2:]], trickle=1.0))
    start_of_comments = len(sse_bytes(chunks[0])) + len(sse_bytes(chunks[1]))
    with trio.fail_after(BOUND):
        async with (
            make_client(llm_server, event_timeout=500.0) as client,
            client.stream_chat(model="m", messages=USER) as stream,
        ):
            with pytest.raises(StreamError, match="stalled after 2 chunk"):
                async for _ in stream:
                    pass
    assert trio.current_time() == start_of_comments + 500.0


async def test_no_event_deadline_when_turned_off(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    chunks = completion_chunks(["w" * 700])
    llm_server.push(SSEReply(chunks, trickle=1.0))
    with trio.fail_after(BOUND):
        async with (
            make_client(llm_server, event_timeout=None) as client,
            client.stream_chat(model="m", messages=USER) as stream,
        ):
            final = await stream.get_final_completion()
    assert final.content == "w" * 700
