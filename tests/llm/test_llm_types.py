"""Typed results built from chat completion JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from opex_trio.errors import APIStatusError
from opex_trio.llm import ChatCompletion, Message, ToolCall, Usage
from opex_trio.testing.llm_server import completion


def test_plain_completion() -> None:
    raw = completion("Hello", model="m", id="chatcmpl-1")
    result = ChatCompletion.from_dict(raw)
    assert result.id == "chatcmpl-1"
    assert result.model == "m"
    assert result.created == 1_700_000_000
    assert result.content == "Hello"
    assert result.finish_reason == "stop"
    assert result.tool_calls == ()
    assert result.message.role == "assistant"
    assert result.usage == Usage(prompt_tokens=5, completion_tokens=7, total_tokens=12)
    assert result.raw is raw


def test_unknown_fields_stay_reachable() -> None:
    raw = completion("Hi", provider="Acme", system_fingerprint="fp")
    raw["choices"][0]["message"]["reasoning"] = "thought"
    raw["choices"][0]["native_finish_reason"] = "end_turn"
    raw["usage"]["cost"] = 0.0012
    result = ChatCompletion.from_dict(raw)
    assert result.raw["provider"] == "Acme"
    assert result.choices[0].raw["native_finish_reason"] == "end_turn"
    assert result.usage is not None
    assert result.usage.raw["cost"] == 0.0012
    assert result.message.to_dict()["reasoning"] == "thought"


def test_tool_calls_and_to_dict() -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    result = ChatCompletion.from_dict(completion(None, tool_calls=[call]))
    assert result.finish_reason == "tool_calls"
    (parsed,) = result.tool_calls
    assert parsed.id == "call_1"
    assert parsed.name == "get_weather"
    assert parsed.function.parse_arguments() == {"city": "Paris"}
    message = result.message.to_dict()
    assert message == {"role": "assistant", "content": None, "tool_calls": [call]}
    json.dumps(message)


def test_arguments_sent_as_an_object_become_json_text() -> None:
    call = ToolCall.from_dict({"id": "c", "function": {"name": "f", "arguments": {"a": 1}}})
    assert call.arguments == '{"a": 1}'
    assert call.to_dict()["function"]["arguments"] == '{"a": 1}'
    assert call.type == "function"


def test_empty_arguments_parse_as_empty_object() -> None:
    call = ToolCall.from_dict({"id": "c", "function": {"name": "f", "arguments": ""}})
    assert call.function.parse_arguments() == {}
    with pytest.raises(ValueError):
        ToolCall.from_dict(
            {"id": "c", "function": {"name": "f", "arguments": "{bad"}}
        ).function.parse_arguments()


def test_content_parts_are_joined() -> None:
    message = Message.from_dict(
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        }
    )
    assert message.content == "ab"


def test_results_are_hashable_and_comparable() -> None:
    a = ChatCompletion.from_dict(completion("x", id="1"))
    b = ChatCompletion.from_dict(completion("x", id="1"))
    assert a == b
    assert hash(a) == hash(b)


@pytest.mark.parametrize(
    "raw",
    [
        [],
        "text",
        {"id": "x"},
        {"choices": "nope"},
        {"choices": [None]},
        {"choices": [{"index": 0}]},
        {"choices": [{"message": "text"}]},
        {"choices": [{"message": {"tool_calls": "nope"}}]},
        {"choices": [{"message": {"tool_calls": [{"id": "c"}]}}]},
        {"choices": [{"message": {"tool_calls": [1]}}]},
        {"choices": [], "usage": 5},
    ],
)
def test_malformed_bodies_raise_a_status_error(raw: Any) -> None:
    with pytest.raises(APIStatusError, match="malformed chat completion") as info:
        ChatCompletion.from_dict(raw)
    assert info.value.status == 200


def test_no_choices_is_reported_when_the_message_is_asked_for() -> None:
    result = ChatCompletion.from_dict({"choices": []})
    with pytest.raises(APIStatusError, match="no choices"):
        _ = result.message
