"""The non-streamed client against the scripted server on 127.0.0.1, in virtual time."""

from __future__ import annotations

import email.utils
import logging
from typing import Any

import httpx2
import pytest
import trio
from trio.testing import MockClock

from opex_trio import telemetry
from opex_trio.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    LLMError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from opex_trio.llm import Client, RetryPolicy
from opex_trio.llm import retry as retry_module
from opex_trio.testing.llm_server import (
    JSONReply,
    LLMTestServer,
    RawReply,
    ResetReply,
    StallReply,
    completion,
    error_body,
)
from tests.llm.llm_support import USER, WEATHER_TOOL, arrivals, make_client

BOUND = 600  # virtual seconds: generous for every scenario here, and a hang still fails


def rate_limited(**headers: str) -> JSONReply:
    return JSONReply(error_body("Rate limit exceeded", code=429), status=429, headers=headers)


async def test_request_shape_and_headers(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    with trio.fail_after(BOUND):
        async with make_client(
            llm_server, app_title="My app", http_referer="https://example.org/app"
        ) as client:
            result = await client.chat_completion(
                model="acme/model",
                messages=USER,
                tools=[WEATHER_TOOL],
                tool_choice={"type": "function", "function": {"name": "get_weather"}},
                temperature=0.2,
                provider={"sort": "price"},
            )
    assert result.content == "Hello from the scripted server."
    (request,) = llm_server.requests
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test-key"
    assert request.headers["user-agent"] == "opex-trio/" + __import__("opex_trio").__version__
    assert request.headers["x-title"] == "My app"
    assert request.headers["x-openrouter-title"] == "My app"
    assert request.headers["http-referer"] == "https://example.org/app"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "model": "acme/model",
        "messages": USER,
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "temperature": 0.2,
        "provider": {"sort": "price"},
    }


async def test_optional_headers_are_left_out(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    with trio.fail_after(BOUND):
        async with make_client(llm_server, api_key=None, user_agent="custom/1") as client:
            await client.chat_completion(model="m", messages=USER, extra_headers={"X-Trace": "t1"})
    headers = llm_server.requests[0].headers
    assert "authorization" not in headers
    assert "x-title" not in headers
    assert "http-referer" not in headers
    assert headers["user-agent"] == "custom/1"
    assert headers["x-trace"] == "t1"


async def test_tool_call_result(autojump_clock: MockClock, llm_server: LLMTestServer) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
    }
    llm_server.push(JSONReply(completion(None, tool_calls=[call])))
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            result = await client.chat_completion(model="m", messages=USER, tools=[WEATHER_TOOL])
    assert result.finish_reason == "tool_calls"
    assert result.tool_calls[0].function.parse_arguments() == {"city": "Oslo"}
    assert result.message.to_dict()["tool_calls"] == [call]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"tools": [WEATHER_TOOL]}, "auto"),
        ({"tools": [WEATHER_TOOL], "tool_choice": "none"}, "none"),
        ({"tools": [WEATHER_TOOL], "tool_choice": "required"}, "required"),
        ({"tools": []}, None),  # no tools: no tool_choice, which the API would refuse
        ({}, None),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_tool_choice_auto_is_sent_with_tools_when_none_is_set(
    autojump_clock: MockClock,
    llm_server: LLMTestServer,
    kwargs: dict[str, Any],
    expected: str | None,
    stream: bool,
) -> None:
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            if stream:
                async with client.stream_chat(model="m", messages=USER, **kwargs) as chat_stream:
                    await chat_stream.get_final_completion()
            else:
                await client.chat_completion(model="m", messages=USER, **kwargs)
    (request,) = llm_server.requests
    assert request.json.get("tool_choice") == expected
    assert ("tool_choice" in request.json) == (expected is not None)
    if kwargs.get("tools"):
        assert request.json["tools"] == [WEATHER_TOOL]


async def test_429_without_retry_after_backs_off_5_10_20(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(*[rate_limited()] * 4)
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            with pytest.raises(RateLimitError) as info:
                await client.chat_completion(model="m", messages=USER)
    assert arrivals(llm_server) == [0.0, 5.0, 15.0, 35.0]
    assert trio.current_time() == 35.0
    error = info.value
    assert error.attempts == 4
    assert error.status == 429
    assert error.code == 429
    assert "Rate limit exceeded" in str(error)
    assert "4 attempts" in str(error)


async def test_429_then_success(autojump_clock: MockClock, llm_server: LLMTestServer) -> None:
    llm_server.push(rate_limited(), rate_limited())
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            result = await client.chat_completion(model="m", messages=USER)
    assert result.content == "Hello from the scripted server."
    assert arrivals(llm_server) == [0.0, 5.0, 15.0]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "12"}, [0.0, 12.0]),
        ({"Retry-After": "1"}, [0.0, 1.0]),  # shorter than the policy's 5 s: honoured
        ({"Retry-After": "0"}, [0.0, 0.0]),
        ({"retry-after-ms": "300"}, [0.0, 0.3]),
        ({"retry-after-ms": "7500"}, [0.0, 7.5]),
        ({"retry-after-ms": "250", "Retry-After": "9"}, [0.0, 0.25]),  # the finer one wins
        ({"Retry-After": "soon"}, [0.0, 5.0]),  # malformed: the policy's wait
        ({"Retry-After": "86400"}, [0.0, 60.0]),  # bounded by max_retry_after
    ],
)
async def test_429_with_retry_after(
    autojump_clock: MockClock,
    llm_server: LLMTestServer,
    headers: dict[str, str],
    expected: list[float],
) -> None:
    llm_server.push(rate_limited(**headers))
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            await client.chat_completion(model="m", messages=USER)
    assert arrivals(llm_server) == expected


async def test_429_with_retry_after_as_http_date(
    autojump_clock: MockClock, llm_server: LLMTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = 1_800_000_000.0
    monkeypatch.setattr(retry_module, "_wall_clock", lambda: now)
    when = email.utils.formatdate(now + 30, usegmt=True)
    llm_server.push(rate_limited(**{"Retry-After": when}))
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            await client.chat_completion(model="m", messages=USER)
    assert arrivals(llm_server) == [0.0, 30.0]


async def test_hints_and_policy_waits_mix_within_one_call(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(
        rate_limited(**{"retry-after-ms": "300"}),
        rate_limited(),  # no hint: the policy's wait for a second retry, 5 s doubled
        JSONReply(error_body("overloaded"), status=503, headers={"Retry-After": "20"}),
    )
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            result = await client.chat_completion(model="m", messages=USER)
    assert result.content == "Hello from the scripted server."
    assert arrivals(llm_server) == [0.0, 0.3, 10.3, 30.3]
    assert trio.current_time() == 30.3


async def test_a_hint_is_followed_exactly_with_the_default_jitter(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(
        JSONReply(error_body("busy"), status=502, headers={"retry-after-ms": "300"}),
        ResetReply(),  # a transport failure has no hint: the policy's wait, with jitter
    )
    with trio.fail_after(BOUND):
        async with Client(None, base_url=llm_server.base_url) as client:
            await client.chat_completion(model="m", messages=USER)
    first, second, third = arrivals(llm_server)
    assert (first, second) == (0.0, 0.3)
    assert 0.3 + 2.0 <= third <= 0.3 + 2.0 * 1.25  # a second retry: 1 s doubled, plus jitter


@pytest.mark.parametrize("status", [500, 502, 503, 504, 508])
async def test_server_errors_back_off_2_4_8(
    autojump_clock: MockClock, llm_server: LLMTestServer, status: int
) -> None:
    llm_server.push(*[JSONReply(error_body("boom"), status=status)] * 4)
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            with pytest.raises(ServerError) as info:
                await client.chat_completion(model="m", messages=USER)
    assert arrivals(llm_server) == [0.0, 2.0, 6.0, 14.0]
    assert info.value.status == status
    assert info.value.attempts == 4


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, APIStatusError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (413, BadRequestError),
        (422, BadRequestError),
        (501, ServerError),
    ],
)
async def test_non_retryable_statuses_raise_at_once(
    autojump_clock: MockClock, llm_server: LLMTestServer, status: int, cls: type[APIStatusError]
) -> None:
    llm_server.push(
        JSONReply(
            error_body("nope", code=status, type="some_error"),
            status=status,
            headers={"x-request-id": "req-42"},
        )
    )
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            with pytest.raises(cls) as info:
                await client.chat_completion(model="m", messages=USER)
    assert type(info.value) is cls
    assert len(llm_server.requests) == 1
    assert trio.current_time() == 0.0
    error = info.value
    assert error.status == status
    assert error.attempts == 1
    assert error.request_id == "req-42"
    assert error.error_type == "some_error"
    assert error.body == error_body("nope", code=status, type="some_error")
    assert "req-42" in str(error)


async def test_error_status_with_a_body_that_is_not_json(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(JSONReply(b"<html>Bad Gateway</html>", status=400))
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            with pytest.raises(BadRequestError, match="Bad Gateway") as info:
                await client.chat_completion(model="m", messages=USER)
    assert info.value.body == "<html>Bad Gateway</html>"


async def test_reset_connection_is_retried(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(ResetReply(), ResetReply())
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            result = await client.chat_completion(model="m", messages=USER)
    assert result.content
    assert arrivals(llm_server) == [0.0, 1.0, 3.0]


async def test_resets_exhaust_the_retries(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(*[ResetReply()] * 4)
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            with pytest.raises(APIConnectionError) as info:
                await client.chat_completion(model="m", messages=USER)
    assert arrivals(llm_server) == [0.0, 1.0, 3.0, 7.0]
    assert info.value.attempts == 4
    assert isinstance(info.value.__cause__, httpx2.ReadError | httpx2.RemoteProtocolError)


async def test_garbage_http_is_a_connection_error(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(*[RawReply(b"NOT HTTP AT ALL\r\n\r\n")] * 4)
    with trio.fail_after(BOUND):
        async with make_client(llm_server, retry=RetryPolicy(jitter=0, max_retries=1)) as client:
            with pytest.raises(APIConnectionError) as info:
                await client.chat_completion(model="m", messages=USER)
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)
    assert arrivals(llm_server) == [0.0, 1.0]


async def test_connection_refused_is_retried_then_reported(autojump_clock: MockClock) -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = trio.current_time()
    with trio.fail_after(BOUND):
        async with Client(
            "k", base_url=f"http://127.0.0.1:{port}/v1", retry=RetryPolicy(jitter=0)
        ) as client:
            with pytest.raises(APIConnectionError, match="could not connect") as info:
                await client.chat_completion(model="m", messages=USER)
    assert isinstance(info.value.__cause__, httpx2.ConnectError)
    assert info.value.attempts == 4
    assert trio.current_time() - start == 7.0


async def test_response_slower_than_the_read_timeout(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(*[JSONReply(completion("late"), delay=30.0)] * 4)
    with trio.fail_after(BOUND):
        async with make_client(llm_server, timeout=10.0) as client:
            with pytest.raises(APITimeoutError) as info:
                await client.chat_completion(model="m", messages=USER)
    # Each attempt waits 10 s for its answer, then 1, 2, 4 s before the next.
    assert arrivals(llm_server) == [0.0, 11.0, 23.0, 37.0]
    assert trio.current_time() == 47.0
    assert info.value.attempts == 4
    assert isinstance(info.value.__cause__, httpx2.ReadTimeout)


@pytest.mark.parametrize(
    ("body", "cls", "expected"),
    [
        (error_body("Rate limited upstream", code=429), RateLimitError, [0.0, 5.0]),
        (
            {
                "id": "gen-1",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "error",
                        "error": {"code": 502, "message": "Provider returned error"},
                    }
                ],
            },
            ServerError,
            [0.0, 2.0],
        ),
        (error_body("Overloaded", code="503"), ServerError, [0.0, 2.0]),
        (error_body("busy", type="rate_limit_exceeded"), RateLimitError, [0.0, 5.0]),
    ],
)
async def test_retryable_errors_inside_a_200_body(
    autojump_clock: MockClock,
    llm_server: LLMTestServer,
    body: dict[str, Any],
    cls: type[APIStatusError],
    expected: list[float],
) -> None:
    llm_server.push(JSONReply(body), JSONReply(body))
    with trio.fail_after(BOUND):
        async with make_client(llm_server, retry=RetryPolicy(jitter=0, max_retries=1)) as client:
            with pytest.raises(cls) as info:
                await client.chat_completion(model="m", messages=USER)
    assert arrivals(llm_server) == expected
    assert info.value.body == body


@pytest.mark.parametrize(
    ("body", "cls", "status"),
    [
        (error_body("bad input", code=400), BadRequestError, 400),
        (error_body("who are you", code=401), AuthenticationError, 401),
        (error_body("something odd"), APIStatusError, 200),
        (error_body("odd code", code="weird"), APIStatusError, 200),
        ({"error": "plain string"}, APIStatusError, 200),
    ],
)
async def test_other_errors_inside_a_200_body_raise_at_once(
    autojump_clock: MockClock,
    llm_server: LLMTestServer,
    body: dict[str, Any],
    cls: type[APIStatusError],
    status: int,
) -> None:
    llm_server.push(JSONReply(body))
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            with pytest.raises(cls) as info:
                await client.chat_completion(model="m", messages=USER)
    assert type(info.value) is cls
    assert info.value.status == status
    assert len(llm_server.requests) == 1


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"id": "x"}'])
async def test_a_200_body_that_is_no_completion(
    autojump_clock: MockClock, llm_server: LLMTestServer, body: bytes
) -> None:
    llm_server.push(JSONReply(body))
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            with pytest.raises(APIStatusError) as info:
                await client.chat_completion(model="m", messages=USER)
    assert info.value.status == 200
    assert len(llm_server.requests) == 1


# --- deadlines ---


async def test_deadline_stops_before_a_backoff_that_would_pass_it(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(*[rate_limited()] * 4)
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            with pytest.raises(APITimeoutError) as info:
                await client.chat_completion(model="m", messages=USER, total_timeout=12.0)
    # Attempts at 0 and 5; the next would be at 15, past the deadline at 12,
    # so the call gives up at 5 instead of sleeping towards the deadline.
    assert arrivals(llm_server) == [0.0, 5.0]
    assert trio.current_time() == 5.0
    assert info.value.attempts == 2
    assert "2 attempt" in str(info.value)
    assert isinstance(info.value.__cause__, RateLimitError)


async def test_client_default_deadline_and_per_call_override(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(*[rate_limited()] * 5)
    with trio.fail_after(BOUND):
        async with make_client(llm_server, total_timeout=4.0) as client:
            with pytest.raises(APITimeoutError) as info:
                await client.chat_completion(model="m", messages=USER)
            assert info.value.attempts == 1
            assert trio.current_time() == 0.0
            with pytest.raises(RateLimitError):
                await client.chat_completion(model="m", messages=USER, total_timeout=None)
    assert arrivals(llm_server) == [0.0, 0.0, 5.0, 15.0, 35.0]


async def test_deadline_passing_during_an_attempt(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(rate_limited(), StallReply())
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            with pytest.raises(
                APITimeoutError, match="total timeout of 9 s passed during attempt 2"
            ) as info:
                await client.chat_completion(model="m", messages=USER, total_timeout=9.0)
    assert trio.current_time() == 9.0
    assert info.value.attempts == 2


async def test_the_callers_cancel_scope_counts_as_a_deadline(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(*[rate_limited()] * 4)
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            with trio.move_on_after(8.0), pytest.raises(APITimeoutError) as info:
                await client.chat_completion(model="m", messages=USER)
    assert arrivals(llm_server) == [0.0, 5.0]
    assert trio.current_time() == 5.0
    assert info.value.attempts == 2


async def test_the_callers_cancellation_is_not_converted(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(StallReply())
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            with trio.move_on_after(3.0) as scope:
                await client.chat_completion(model="m", messages=USER)
    assert scope.cancelled_caught
    assert trio.current_time() == 3.0


async def test_max_retries_zero(autojump_clock: MockClock, llm_server: LLMTestServer) -> None:
    llm_server.push(rate_limited())
    with trio.fail_after(BOUND):
        async with make_client(llm_server, retry=RetryPolicy(max_retries=0)) as client:
            with pytest.raises(RateLimitError) as info:
                await client.chat_completion(model="m", messages=USER)
    assert info.value.attempts == 1


# --- telemetry and logs ---


async def test_retries_are_logged_and_emitted(
    autojump_clock: MockClock, llm_server: LLMTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    llm_server.push(rate_limited(), JSONReply(error_body("x"), status=503))
    seen: list[telemetry.TelemetryEvent] = []
    hooked: list[telemetry.TelemetryEvent] = []
    caplog.set_level(logging.INFO, logger="opex_trio.llm")
    with trio.fail_after(BOUND), telemetry.subscribe(seen.append):
        async with make_client(llm_server, event_hook=hooked.append) as client:
            await client.chat_completion(model="m", messages=USER)
    assert seen == hooked
    started = seen[0]
    assert isinstance(started, telemetry.LLMRequestStarted)
    rid = started.request_id
    finished = seen[-1]
    assert isinstance(finished, telemetry.LLMRequestFinished)
    assert finished.response_id is not None
    assert seen == [
        telemetry.LLMRequestStarted(
            request_id=rid, model="m", stream=False, base_url=llm_server.base_url
        ),
        telemetry.LLMRetry(
            request_id=rid, model="m", attempt=1, delay=5.0, reason="status 429", status=429
        ),
        telemetry.LLMRetry(
            request_id=rid, model="m", attempt=2, delay=4.0, reason="status 503", status=503
        ),
        telemetry.LLMRequestFinished(
            request_id=rid,
            model="m",
            stream=False,
            outcome="ok",
            duration=9.0,
            attempts=3,
            prompt_tokens=5,
            completion_tokens=7,
            response_model="m",
            response_id=finished.response_id,
            finish_reasons=("stop",),
        ),
    ]
    retries = [
        r for r in caplog.records if r.name == "opex_trio.llm" and "retrying" in r.getMessage()
    ]
    assert len(retries) == 2
    assert "status 429" in retries[0].getMessage()


async def test_a_failed_call_is_emitted_with_its_error(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    llm_server.push(JSONReply(error_body("bad"), status=400))
    seen: list[telemetry.TelemetryEvent] = []
    with trio.fail_after(BOUND), telemetry.subscribe(seen.append):
        async with make_client(llm_server) as client:
            with pytest.raises(BadRequestError) as info:
                await client.chat_completion(model="m", messages=USER)
    finished = seen[-1]
    assert isinstance(finished, telemetry.LLMRequestFinished)
    assert finished.outcome == "BadRequestError"
    assert finished.error is info.value
    assert finished.attempts == 1


async def test_a_failing_event_hook_does_not_break_the_call(
    autojump_clock: MockClock, llm_server: LLMTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    def hook(event: telemetry.TelemetryEvent) -> None:
        raise RuntimeError("hook bug")

    with trio.fail_after(BOUND):
        async with make_client(llm_server, event_hook=hook) as client:
            assert (await client.chat_completion(model="m", messages=USER)).content
    assert any("hook bug" in (r.exc_text or "") or r.exc_info for r in caplog.records)


async def test_the_key_never_shows(
    autojump_clock: MockClock, llm_server: LLMTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-or-v1-very-secret-value"
    llm_server.push(
        JSONReply(error_body("overloaded"), status=503),
        JSONReply(error_body("invalid key"), status=401),
    )
    caplog.set_level(logging.DEBUG)
    with trio.fail_after(BOUND):
        client = make_client(llm_server, api_key=secret, app_title="t")
        texts = [repr(client), str(client)]
        async with client:
            texts.append(repr(client))
            with pytest.raises(AuthenticationError) as info:
                await client.chat_completion(model="m", messages=USER)
    texts += [str(info.value), repr(info.value), repr(info.value.body), repr(info.value.headers)]
    texts += [record.getMessage() for record in caplog.records]
    assert caplog.records  # httpx2 and the retry logged something
    assert not [text for text in texts if secret in text]


# --- lifecycle and bad input ---


async def test_calls_outside_the_async_with(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    client = make_client(llm_server)
    with pytest.raises(RuntimeError, match="async with"):
        await client.chat_completion(model="m", messages=USER)
    async with client:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        await client.chat_completion(model="m", messages=USER)
    with pytest.raises(RuntimeError, match="again"):
        async with client:
            pass


async def test_a_borrowed_http_client_stays_open(
    autojump_clock: MockClock, llm_server: LLMTestServer
) -> None:
    with trio.fail_after(BOUND):
        async with httpx2.AsyncClient(headers={"X-From-Borrowed": "1"}) as http:
            async with make_client(llm_server, http_client=http, timeout=30.0) as client:
                await client.chat_completion(model="m", messages=USER)
            assert not http.is_closed
            response = await http.get(llm_server.base_url + "/models")
            assert response.status_code == 404
    assert llm_server.requests[0].headers["x-from-borrowed"] == "1"
    assert llm_server.requests[0].headers["authorization"] == "Bearer sk-test-key"


async def test_connections_are_reused(autojump_clock: MockClock, llm_server: LLMTestServer) -> None:
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            for _ in range(5):
                await client.chat_completion(model="m", messages=USER)
    assert llm_server.connections == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"base_url": "ftp://host/v1"}, "base_url"),
        ({"base_url": "not a url"}, "base_url"),
        ({"base_url": 5}, "base_url"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": "10"}, "timeout"),
        ({"total_timeout": 0}, "total_timeout"),
        ({"app_title": "Caf\u00e9"}, "app_title"),
        ({"app_title": "a\r\nX-Evil: 1"}, "app_title"),
        ({"http_referer": 5}, "http_referer"),
        ({"user_agent": "x\n"}, "user_agent"),
        ({"headers": {"X-A": "\u2603"}}, "X-A"),
        ({"retry": {"max_retries": 1}}, "retry"),
        ({"http_client": object()}, "http_client"),
        ({"event_hook": 5}, "event_hook"),
    ],
)
def test_bad_client_arguments(kwargs: dict[str, Any], match: str) -> None:
    kwargs.setdefault("base_url", "http://127.0.0.1:1/v1")
    with pytest.raises(ConfigError, match=match):
        Client("k", **kwargs)


def test_bad_api_key() -> None:
    with pytest.raises(ConfigError, match="api_key"):
        Client(5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="api_key") as info:
        Client("sk-\nsecret")
    assert "secret" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": ""}, "model"),
        ({"model": None}, "model"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}, "oops"]}, r"messages\[1\]"),
        ({"tools": {"a": 1}}, "tools"),
        ({"tool_choice": 5}, "tool_choice"),
        ({"stream": True}, "stream_chat"),
        ({"messages": [{"role": "user", "content": float("nan")}]}, "JSON"),
        ({"messages": [{"role": "user", "content": object()}]}, "JSON"),
        ({"total_timeout": -5}, "total_timeout"),
    ],
)
async def test_bad_call_arguments(
    autojump_clock: MockClock, llm_server: LLMTestServer, kwargs: dict[str, Any], match: str
) -> None:
    call: dict[str, Any] = {"model": "m", "messages": USER, **kwargs}
    with trio.fail_after(BOUND):
        async with make_client(llm_server) as client:
            with pytest.raises(ConfigError, match=match):
                await client.chat_completion(**call)
            with pytest.raises(ConfigError, match=match if "stream" not in kwargs else "stream"):
                client.stream_chat(**call)
    assert llm_server.requests == []


def test_every_llm_error_is_an_opex_error() -> None:
    from opex_trio.errors import OpexError

    assert issubclass(LLMError, OpexError)
    assert issubclass(APITimeoutError, TimeoutError)
