"""Typed results of the chat completions API, and the events of a streamed completion.

The results are frozen attrs classes built from the JSON the server sent.
Each keeps that JSON in ``raw``, so fields this module does not know
(``reasoning``, ``provider``, ``system_fingerprint``, whatever a provider
adds) stay reachable. :meth:`Message.to_dict` gives the assistant message as
a plain OpenAI dict, ready to append to a conversation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from ..errors import APIStatusError

__all__ = [
    "ChatCompletion",
    "Choice",
    "ContentDelta",
    "FinishEvent",
    "FunctionCall",
    "Message",
    "ReasoningDelta",
    "StreamEvent",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "UsageEvent",
]


def _malformed(what: str, raw: Any) -> APIStatusError:
    return APIStatusError(f"malformed chat completion: {what}", status=200, body=raw)


def _text(value: Any) -> str | None:
    """Message content as text: providers send a string, ``None`` or a list of parts."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(
            part.get("text") or ""
            for part in value
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return str(value)


@attrs.frozen
class FunctionCall:
    """The function a tool call names, with its arguments as the JSON text the model wrote."""

    name: str
    arguments: str

    def parse_arguments(self) -> Any:
        """The arguments decoded from JSON (``{}`` for an empty string).

        Raises :class:`ValueError` when the model wrote invalid JSON.
        """
        return json.loads(self.arguments) if self.arguments.strip() else {}


@attrs.frozen
class ToolCall:
    """A tool call the model asked for."""

    id: str
    function: FunctionCall
    type: str = "function"
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    @property
    def name(self) -> str:
        """The function's name."""
        return self.function.name

    @property
    def arguments(self) -> str:
        """The function's arguments as JSON text."""
        return self.function.arguments

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ToolCall:
        """Build a tool call from its OpenAI dict."""
        if not isinstance(raw, Mapping):
            raise _malformed(f"a tool call is {type(raw).__name__}, not an object", raw)
        function = raw.get("function")
        if not isinstance(function, Mapping):
            raise _malformed("a tool call has no function object", raw)
        arguments = function.get("arguments")
        if arguments is None:
            arguments = ""
        elif not isinstance(arguments, str):
            # Some servers send the arguments as an object; the API's type is a JSON string.
            arguments = json.dumps(arguments)
        return cls(
            id=str(raw.get("id") or ""),
            function=FunctionCall(name=str(function.get("name") or ""), arguments=arguments),
            type=str(raw.get("type") or "function"),
            raw=raw,
        )

    def to_dict(self) -> dict[str, Any]:
        """The tool call as an OpenAI dict (unknown fields of the original kept)."""
        out = dict(self.raw)
        out["id"] = self.id
        out["type"] = self.type
        out["function"] = {
            **(self.raw.get("function") or {}),
            "name": self.function.name,
            "arguments": self.function.arguments,
        }
        return out


@attrs.frozen
class Message:
    """An assistant message: text, tool calls, or both."""

    role: str
    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Message:
        """Build a message from its OpenAI dict."""
        if not isinstance(raw, Mapping):
            raise _malformed(f"a message is {type(raw).__name__}, not an object", raw)
        calls = raw.get("tool_calls")
        if calls is None:
            tool_calls: tuple[ToolCall, ...] = ()
        elif isinstance(calls, list):
            tool_calls = tuple(ToolCall.from_dict(call) for call in calls)
        else:
            raise _malformed("tool_calls is not a list", raw)
        return cls(
            role=str(raw.get("role") or "assistant"),
            content=_text(raw.get("content")),
            tool_calls=tool_calls,
            raw=raw,
        )

    def to_dict(self) -> dict[str, Any]:
        """The message as a plain OpenAI dict, to append to the conversation.

        Fields this module does not model (``reasoning``, ``refusal``,
        ``reasoning_details``, ...) are kept as the server sent them; tool call
        arguments are always JSON text.
        """
        out = dict(self.raw)
        out["role"] = self.role
        out["content"] = self.content
        if self.tool_calls:
            out["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        else:
            out.pop("tool_calls", None)
        return out


@attrs.frozen
class Choice:
    """One choice of a completion (there is one unless the request asked for ``n > 1``)."""

    index: int
    message: Message
    finish_reason: str | None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], position: int = 0) -> Choice:
        """Build a choice from its OpenAI dict; ``position`` is its place in the list."""
        if not isinstance(raw, Mapping):
            raise _malformed(f"a choice is {type(raw).__name__}, not an object", raw)
        message = raw.get("message")
        if message is None:
            raise _malformed("a choice has no message", raw)
        index = raw.get("index")
        finish = raw.get("finish_reason")
        return cls(
            index=index if isinstance(index, int) else position,
            message=Message.from_dict(message),
            finish_reason=finish if isinstance(finish, str) else None,
            raw=raw,
        )


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@attrs.frozen
class Usage:
    """Token counts; ``None`` where the server did not say."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Usage:
        """Build usage from its OpenAI dict (``prompt_tokens_details`` and the like stay in raw)."""
        if not isinstance(raw, Mapping):
            raise _malformed(f"usage is {type(raw).__name__}, not an object", raw)
        return cls(
            prompt_tokens=_count(raw.get("prompt_tokens")),
            completion_tokens=_count(raw.get("completion_tokens")),
            total_tokens=_count(raw.get("total_tokens")),
            raw=raw,
        )


@attrs.frozen
class ChatCompletion:
    """A chat completion: the API's answer, or a stream's assembled result."""

    id: str | None
    model: str | None
    choices: tuple[Choice, ...]
    usage: Usage | None = None
    created: int | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    @classmethod
    def from_dict(cls, raw: Any) -> ChatCompletion:
        """Build a completion from the decoded JSON body.

        Raises :class:`~opex_trio.errors.APIStatusError` (status 200) when the
        body is not a chat completion.
        """
        if not isinstance(raw, dict):
            raise _malformed(f"the body is {type(raw).__name__}, not an object", raw)
        choices = raw.get("choices")
        if not isinstance(choices, list):
            raise _malformed("no choices list", raw)
        usage = raw.get("usage")
        created = raw.get("created")
        return cls(
            id=raw.get("id") if isinstance(raw.get("id"), str) else None,
            model=raw.get("model") if isinstance(raw.get("model"), str) else None,
            choices=tuple(Choice.from_dict(choice, i) for i, choice in enumerate(choices)),
            usage=Usage.from_dict(usage) if usage is not None else None,
            created=created if isinstance(created, int) else None,
            raw=raw,
        )

    def _first(self) -> Choice:
        if not self.choices:
            raise _malformed("the completion has no choices", self.raw)
        return self.choices[0]

    @property
    def message(self) -> Message:
        """The first choice's message."""
        return self._first().message

    @property
    def content(self) -> str | None:
        """The first choice's text."""
        return self._first().message.content

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The first choice's tool calls."""
        return self._first().message.tool_calls

    @property
    def finish_reason(self) -> str | None:
        """The first choice's finish reason."""
        return self._first().finish_reason


@attrs.frozen
class StreamEvent:
    """Base class of the events a streamed completion yields.

    Events of one choice carry its index as ``choice`` (0 unless the request
    asked for ``n > 1``).
    """


@attrs.frozen
class ContentDelta(StreamEvent):
    """A piece of the message's text."""

    text: str
    choice: int = 0


@attrs.frozen
class ReasoningDelta(StreamEvent):
    """A piece of the model's reasoning text, for providers that stream it (``delta.reasoning``)."""

    text: str
    choice: int = 0


@attrs.frozen
class ToolCallDelta(StreamEvent):
    """A piece of a tool call.

    ``index`` is the tool call's place in the assembled message (not
    necessarily the server's ``index``, which some servers omit or reuse).
    ``id`` and ``name`` are set on the event that first brings them;
    ``arguments`` is the new piece of the arguments' JSON text.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    choice: int = 0


@attrs.frozen
class FinishEvent(StreamEvent):
    """A choice finished, for ``reason`` (``"stop"``, ``"length"``, ``"tool_calls"``, ...)."""

    reason: str
    choice: int = 0


@attrs.frozen
class UsageEvent(StreamEvent):
    """The token counts, usually in the last chunk."""

    usage: Usage
