"""Streamed completions against the scripted server on 127.0.0.1, in virtual time."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
import trio
from trio.testing import MockClock

from opex_trio import telemetry
from opex_trio.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    RateLimitError,
    ServerError,
    StreamError,
)
from opex_trio.llm import (
    Client,
    ContentDelta,
    FinishEvent,
    RetryPolicy,
    StreamEvent,
    ToolCallDelta,
    Usage,
    UsageEvent,
)
from opex_trio.testing.llm_server import (
    JSONReply,
    LLMTestServer,
    ResetReply,
    SSEChunk,
    SSEReply,
    StallReply,
    completion,
    completion_chunks,
    error_body,
)
from tests.llm.llm_support import USER, WEATHER_TOOL, arrivals, make_client

BOUND = 600


def chunk(delta: dict[str, Any], finish: str | None = None, **top: Any) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **top,
    }


async def collect(llm_server: LLMTestServer, **kwargs: Any) -> tuple[list[StreamEvent], Any]:
    client_kwargs = kwargs.pop("client", {})
    async with make_client(llm_server, **client_kwargs) as client:
        return await drain(client, **kwargs)


async def drain(
    client: Client, events: list[StreamEvent] | None = None, **kwargs: Any
) -> tuple[list[StreamEvent], Any]:
    """Stream a completion to its end, appending its events to ``events``."""
    seen = [] if events is None else events
    async with client.stream_chat(model="m", messages=USER, **kwargs) as stream:
        async for event in stream:
            seen.append(event)  # one by one: what arrived before an error counts
    return seen, stream.final


async def test_stream_events_and_final(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    with trio.fail_after(BOUND):
        events, final = await collect(llm_server)
    assert events == [
        ContentDelta("Hello"),
        ContentDelta(" from"),
        ContentDelta(" the"),
        ContentDelta(" scripted"),
        ContentDelta(" server."),
        FinishEvent("stop"),
        UsageEvent(Usage(prompt_tokens=5, completion_tokens=5, total_tokens=10)),
    ]
    assert final.content == "Hello from the scripted server."
    assert final.finish_reason == "stop"
    (request,) = llm_server.requests
    assert request.json["stream"] is True
    assert request.json["stream_options"] == {"include_usage": True}
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["authorization"] == "Bearer sk-test-key"


async def test_stream_options_can_be_left_out(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    with trio.fail_after(BOUND):
        await collect(llm_server, include_usage=False)
        await collect(llm_server, stream_options={"include_usage": False})
    assert "stream_options" not in llm_server.requests[0].json
    assert llm_server.requests[1].json["stream_options"] == {"include_usage": False}


async def test_get_final_completion(autojump_clock: MockClock, llm_server: LLMTestServer) -> None:
    with trio.fail_after(BOUND):
        async with (
            make_client(llm_server) as client,
            client.stream_chat(model="m", messages=USER) as stream,
        ):
            first = await stream.__anext__()
            final = await stream.get_final_completion()
    assert first == ContentDelta("Hello")
    assert final.content == "Hello from the scripted server."
    assert stream.final is final


async def test_comment_lines_and_multi_line_data(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(
        SSEReply(
            [
                b": OPENROUTER PROCESSING\n\n",
                SSEChunk(raw=b": OPENROUTER PROCESSING\n\n", delay=2.0),
                b'data: {"id": "c1", "choices": [{"index": 0,\ndata:  "delta": {"content": "multi"}}]}\n\n',
                b"event: message\nid: 7\nretry: 1000\n"
                + b'data: {"choices": [{"index": 0, "delta": {"content": " line"}}]}\n\n',
                b": keep-alive\n",
                chunk({}, "stop"),
            ]
        )
    )
    with trio.fail_after(BOUND):
        events, final = await collect(llm_server)
    assert events == [ContentDelta("multi"), ContentDelta(" line"), FinishEvent("stop")]
    assert final.content == "multi line"


async def test_repeated_id_and_name_deltas_from_llama_cpp(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    call_id = "call__0_get_weather_cmpl-1"

    def piece(arguments: str) -> dict[str, Any]:
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
            }
        )

    llm_server.push(
        SSEReply(
            [
                chunk(
                    {
                        "role": "assistant",
                        "content": None,
                        "function_call": None,
                        "tool_calls": None,
                    }
                ),
                *[piece(p) for p in ["{", ' "', "city", '":', ' "', "Oslo", '"', " }"]],
                chunk(
                    {"role": None, "content": None, "function_call": None, "tool_calls": None},
                    "tool_calls",
                ),
            ]
        )
    )
    with trio.fail_after(BOUND):
        events, final = await collect(llm_server, tools=[WEATHER_TOOL], tool_choice="required")
    (call,) = final.tool_calls
    assert (call.id, call.name) == (call_id, "get_weather")
    assert call.function.parse_arguments() == {"city": "Oslo"}
    assert final.finish_reason == "tool_calls"
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert "".join(d.arguments for d in deltas) == '{ "city": "Oslo" }'
    assert [d.name for d in deltas if d.name] == ["get_weather"]


async def test_tool_calls_without_index(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(
        SSEReply(
            [
                chunk(
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "a",
                                "type": "function",
                                "function": {"name": "f", "arguments": '{"n": 1}'},
                            }
                        ],
                    }
                ),
                chunk(
                    {
                        "tool_calls": [
                            {
                                "id": "b",
                                "type": "function",
                                "function": {"name": "g", "arguments": '{"n": 2}'},
                            }
                        ]
                    }
                ),
                chunk({}, "tool_calls"),
            ]
        )
    )
    with trio.fail_after(BOUND):
        _, final = await collect(llm_server)
    assert [(c.id, c.name, c.arguments) for c in final.tool_calls] == [
        ("a", "f", '{"n": 1}'),
        ("b", "g", '{"n": 2}'),
    ]


async def test_per_chunk_delays_in_virtual_time(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(SSEReply([SSEChunk(c, delay=3.0) for c in completion_chunks(["a", "b"])]))
    times = []
    with trio.fail_after(BOUND):
        async with (
            make_client(llm_server) as client,
            client.stream_chat(model="m", messages=USER) as stream,
        ):
            times.append(trio.current_time())
            times += [trio.current_time() async for e in stream if isinstance(e, ContentDelta)]
    # Entering waits for the first event (the role chunk, 3 s in).
    assert times == [3.0, 6.0, 9.0]


async def test_truncated_stream_raises_with_the_partial_message(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    chunks = completion_chunks(["Hello", " wor"])[:3]
    llm_server.push(SSEReply(chunks, done=False, truncate=True))
    events: list[StreamEvent] = []
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            with pytest.raises(StreamError, match="stream broke after 3 chunk") as info:
                await drain(client, events)
    assert events == [ContentDelta("Hello"), ContentDelta(" wor")]
    assert info.value.partial.content == "Hello wor"
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)
    assert len(llm_server.requests) == 1  # never retried once an event arrived


async def test_clean_end_without_done_and_unfinished(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(SSEReply(completion_chunks(["Hel"])[:2], done=False))
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            with pytest.raises(StreamError, match=r"before \[DONE\]") as info:
                await drain(client)
    assert info.value.partial.content == "Hel"


async def test_clean_end_without_done_but_finished_is_accepted(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(SSEReply(completion_chunks(["whole"]), done=False))
    with trio.fail_after(BOUND):
        _, final = await collect(llm_server)
    assert final.content == "whole"


@pytest.mark.parametrize(
    "bad",
    [
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "error": {"code": 502, "message": "Upstream error"},
            "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
        },
        chunk({}, "error"),
        {"error": {"message": "Internal error", "code": "server_error"}},
    ],
)
async def test_mid_stream_error_chunk(
    autojump_clock: MockClock, llm_server: LLMTestServer, bad: dict[str, Any]
) -> None:
    llm_server.push(SSEReply([*completion_chunks(["Hi", " there"])[:3], bad]))
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            with pytest.raises(StreamError, match="error in the stream") as info:
                await drain(client)
    assert info.value.partial.content == "Hi there"
    assert info.value.body == bad
    assert len(llm_server.requests) == 1


async def test_error_event_type(autojump_clock: MockClock, llm_server: LLMTestServer) -> None:
    llm_server.push(
        SSEReply(
            [completion_chunks(["Hi"])[1], b'event: error\ndata: {"message": "model crashed"}\n\n']
        )
    )
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            with pytest.raises(StreamError, match="model crashed"):
                await drain(client)


async def test_bad_json_in_the_stream(autojump_clock: MockClock, llm_server: LLMTestServer) -> None:
    llm_server.push(SSEReply([completion_chunks(["Hi"])[1], "{not json"]))
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            with pytest.raises(StreamError, match="not JSON") as info:
                await drain(client)
    assert info.value.partial.content == "Hi"


async def test_stall_mid_stream_hits_the_read_timeout(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    chunks = completion_chunks(["a", "b"])
    llm_server.push(SSEReply([chunks[0], chunks[1], SSEChunk(chunks[2], delay=100.0)]))
    with trio.fail_after(BOUND):
        async with make_client(llm_server, timeout=20.0) as client:
            with pytest.raises(StreamError, match="read timeout") as info:
                await drain(client)
    assert trio.current_time() == 20.0
    assert isinstance(info.value.__cause__, httpx2.ReadTimeout)


# --- retries happen only before the first event ---


async def test_error_status_before_the_stream_is_retried(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(
        JSONReply(error_body("slow down", code=429), status=429, headers={"Retry-After": "8"}),
        JSONReply(error_body("oops"), status=502),
        ResetReply(),
    )
    with trio.fail_after(BOUND):
        _, final = await collect(llm_server)
    assert final.content == "Hello from the scripted server."
    assert arrivals(llm_server) == [0.0, 8.0, 12.0, 16.0]


async def test_error_as_the_first_event_is_retried_like_its_status(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    first_error = {"error": {"code": 429, "message": "Rate limit exceeded: free-models-per-min"}}
    llm_server.push(SSEReply([b": OPENROUTER PROCESSING\n\n", first_error]))
    with trio.fail_after(BOUND):
        _, final = await collect(llm_server)
    assert final.content
    assert arrivals(llm_server) == [0.0, 5.0]


async def test_first_event_errors_exhaust_the_retries(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    bad = {
        "id": "gen-1",
        "choices": [
            {
                "index": 0,
                "delta": {},
                "finish_reason": "error",
                "error": {"code": 503, "message": "No instances"},
            }
        ],
    }
    llm_server.push(*[SSEReply([bad])] * 4)
    with trio.fail_after(BOUND):
        with pytest.raises(ServerError, match="No instances") as info:
            await collect(llm_server)
    assert info.value.attempts == 4
    assert info.value.status == 503
    assert arrivals(llm_server) == [0.0, 2.0, 6.0, 14.0]


async def test_drop_before_the_first_event_is_retried(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(
        SSEReply([b": OPENROUTER PROCESSING\n\n"], done=False, truncate=True),
        SSEReply([], done=False),
        StallReply(),
    )
    with trio.fail_after(BOUND):
        _, final = await collect(llm_server, client={"timeout": 10.0})
    assert final.content
    # drop at 0 (wait 1), empty body at 1 (wait 2), stall at 3 times out at 13 (wait 4)
    assert arrivals(llm_server) == [0.0, 1.0, 3.0, 17.0]


async def test_non_retryable_status_before_the_stream(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(JSONReply(error_body("bad key", code=401), status=401))
    with trio.fail_after(BOUND):
        with pytest.raises(AuthenticationError):
            await collect(llm_server)
    assert len(llm_server.requests) == 1


async def test_json_answer_to_a_stream_request(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(
        JSONReply(error_body("Rate limited", code=429)), JSONReply(completion("not streamed"))
    )
    with trio.fail_after(BOUND):
        with pytest.raises(StreamError, match="expected an event stream"):
            await collect(llm_server)
    assert arrivals(llm_server) == [0.0, 5.0]


async def test_deadline_before_the_first_event(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(
        JSONReply(error_body("x"), status=503),
        SSEReply([SSEChunk(c, delay=10.0) for c in completion_chunks()]),
    )
    with trio.fail_after(BOUND):
        with pytest.raises(APITimeoutError, match="during attempt 2") as info:
            await collect(llm_server, total_timeout=7.0)
    assert trio.current_time() == 7.0
    assert info.value.attempts == 2


async def test_deadline_gives_up_before_a_long_backoff(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(*[JSONReply(error_body("x", code=429), status=429)] * 4)
    with trio.fail_after(BOUND):
        with pytest.raises(APITimeoutError) as info:
            await collect(llm_server, total_timeout=3.0)
    assert trio.current_time() == 0.0
    assert info.value.attempts == 1
    assert isinstance(info.value.__cause__, RateLimitError)


async def test_leaving_early_closes_the_connection(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(SSEReply([SSEChunk(c, delay=1.0) for c in completion_chunks(["x"] * 50)]))
    seen: list[telemetry.TelemetryEvent] = []
    with trio.fail_after(BOUND), telemetry.subscribe(seen.append):
        async with make_client(llm_server) as client:
            async with client.stream_chat(model="m", messages=USER) as stream:
                async for event in stream:
                    if isinstance(event, ContentDelta):
                        break
            # The next call needs a new connection: the abandoned one was closed.
            await client.chat_completion(model="m", messages=USER)
    assert llm_server.connections == 2
    finished = [e for e in seen if isinstance(e, telemetry.LLMRequestFinished)]
    assert finished[0].outcome == "incomplete"
    assert finished[0].stream is True
    assert finished[1].outcome == "ok"


async def test_completed_streams_reuse_the_connection(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            for _ in range(3):
                async with client.stream_chat(model="m", messages=USER) as stream:
                    await stream.get_final_completion()
    assert llm_server.connections == 1


async def test_cancelled_mid_stream(autojump_clock: MockClock, llm_server: LLMTestServer) -> None:
    llm_server.push(SSEReply([SSEChunk(c, delay=5.0) for c in completion_chunks(["a", "b", "c"])]))
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            with trio.move_on_after(12.0) as scope:
                async with client.stream_chat(model="m", messages=USER) as stream:
                    async for _ in stream:
                        pass
    assert scope.cancelled_caught
    assert trio.current_time() == 12.0


async def test_stream_telemetry(autojump_clock: MockClock, llm_server: LLMTestServer) -> None:
    llm_server.push(ResetReply())
    seen: list[telemetry.TelemetryEvent] = []
    with trio.fail_after(BOUND), telemetry.subscribe(seen.append):
        await collect(llm_server)
    started = seen[0]
    assert isinstance(started, telemetry.LLMRequestStarted)
    rid = started.request_id
    finished = seen[-1]
    assert isinstance(finished, telemetry.LLMRequestFinished)
    assert finished.response_id is not None
    assert seen == [
        telemetry.LLMRequestStarted(
            request_id=rid, model="m", stream=True, base_url=llm_server.base_url
        ),
        telemetry.LLMRetry(
            request_id=rid, model="m", attempt=1, delay=1.0, reason="ReadError", status=None
        ),
        telemetry.LLMRequestFinished(
            request_id=rid,
            model="m",
            stream=True,
            outcome="ok",
            duration=1.0,
            attempts=2,
            prompt_tokens=5,
            completion_tokens=5,
            response_model="m",
            response_id=finished.response_id,
            finish_reasons=("stop",),
            time_to_first_chunk=1.0,
        ),
    ]


async def test_stream_failure_telemetry(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(SSEReply(completion_chunks()[:2], done=False, truncate=True))
    seen: list[telemetry.TelemetryEvent] = []
    with (
        trio.fail_after(BOUND),
        telemetry.subscribe(seen.append),
        pytest.raises(StreamError) as info,
    ):
        await collect(llm_server)
    finished = seen[-1]
    assert isinstance(finished, telemetry.LLMRequestFinished)
    assert finished.outcome == "StreamError"
    assert finished.error is info.value


async def test_iterating_outside_the_async_with(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            stream = client.stream_chat(model="m", messages=USER)
            with pytest.raises(RuntimeError, match="async with"):
                await stream.__anext__()
            async with stream:
                pass
            with pytest.raises(RuntimeError, match="once"):
                async with stream:
                    pass
    assert stream.final is None


async def test_connection_refused_before_the_stream(autojump_clock: MockClock) -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    from opex_trio.llm import Client

    with trio.fail_after(BOUND):
        async with Client(
            "k", base_url=f"http://127.0.0.1:{port}/v1", retry=RetryPolicy(max_retries=0)
        ) as client:
            with pytest.raises(APIConnectionError):
                async with client.stream_chat(model="m", messages=USER):
                    pass
