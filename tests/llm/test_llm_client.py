"""The non-streamed client against the scripted server on 127.0.0.1, in virtual time."""

from __future__ import annotations

import logging
from typing import Any

import httpx2
import pytest
import trio
from trio.testing import MockClock

from opex_trio import telemetry
from opex_trio.errors import (
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    LLMError,
)
from opex_trio.llm import Client
from opex_trio.testing.llm_server import (
    JSONReply,
    LLMTestServer,
    completion,
    error_body,
)
from tests.llm.llm_support import USER, WEATHER_TOOL, make_client

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
