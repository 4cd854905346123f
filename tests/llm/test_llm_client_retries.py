"""Retries, backoff, error statuses and call deadlines of the non-streamed client, in virtual time."""

from __future__ import annotations

import email.utils
from typing import Any

import httpx2
import pytest
import trio
from trio.testing import MockClock

from opex_trio.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
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
from tests.llm.llm_support import USER, arrivals, make_client

BOUND = 600  # virtual seconds: generous for every scenario here, and a hang still fails


def rate_limited(**headers: str) -> JSONReply:
    return JSONReply(error_body("Rate limit exceeded", code=429), status=429, headers=headers)


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
