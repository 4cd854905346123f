"""What a server asks of a client: roots, sampling (``sampling/createMessage``), elicitation.

In the legacy era the server sends these as requests; in the modern era it asks
for them as inputs of an ``input_required`` result. Either way the owner's
handlers get these types and answer with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ._model import (
    _NO_EXTRA,
    McpType,
    _int,
    _list_of,
    _meta,
    _number,
    _object,
    _str,
    _type,
)
from .content import (
    SamplingContent,
    ToolResultContent,
    ToolUseContent,
    _content_one_or_many,
)

__all__ = [
    "CreateMessageParams",
    "CreateMessageResult",
    "ElicitParams",
    "ElicitResult",
    "ListRootsResult",
    "Root",
    "SamplingMessage",
    "blocks_of",
    "sampling_problem",
]


@attrs.frozen(slots=False)
class Root(McpType):
    """A root (a directory or file URI) the client exposes to the server."""

    uri: str = attrs.field(metadata=_meta("uri", _str, required=True))
    name: str | None = attrs.field(default=None, kw_only=True, metadata=_meta("name", _str))
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class ListRootsResult(McpType):
    """The client's answer to ``roots/list``."""

    roots: tuple[Root, ...] = attrs.field(
        metadata=_meta("roots", _list_of(_type(Root)), required=True)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class SamplingMessage(McpType):
    """One message of a sampling request: one content block, or several since 2025-11-25."""

    role: str = attrs.field(metadata=_meta("role", _str, required=True))
    content: SamplingContent | tuple[SamplingContent, ...] = attrs.field(
        metadata=_meta("content", _content_one_or_many, required=True)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class CreateMessageParams(McpType):
    """Params of ``sampling/createMessage``: the server asks the client's model to answer."""

    messages: tuple[SamplingMessage, ...] = attrs.field(
        metadata=_meta("messages", _list_of(_type(SamplingMessage)), required=True)
    )
    max_tokens: int = attrs.field(metadata=_meta("maxTokens", _int, required=True))
    system_prompt: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("systemPrompt", _str)
    )
    include_context: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("includeContext", _str)
    )
    temperature: float | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("temperature", _number)
    )
    stop_sequences: tuple[str, ...] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("stopSequences", _list_of(_str))
    )
    metadata: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("metadata", _object)
    )
    model_preferences: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("modelPreferences", _object)
    )
    tools: tuple[Any, ...] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("tools", _list_of(_object))
    )
    tool_choice: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("toolChoice", _object)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


def blocks_of(message: SamplingMessage | CreateMessageResult) -> tuple[SamplingContent, ...]:
    """The content blocks of a sampling message, one or several, as a tuple."""
    content = message.content
    return content if isinstance(content, tuple) else (content,)


def sampling_problem(params: CreateMessageParams) -> str | None:
    """Why ``params`` break the rules of tool use in sampling, or ``None`` when they keep them.

    A message with tool results holds nothing else, and the message after one
    with tool uses answers every one of them (by id) before anything else.
    """
    waiting: set[str] = set()
    for index, message in enumerate(params.messages):
        blocks = blocks_of(message)
        results = [b for b in blocks if isinstance(b, ToolResultContent)]
        if results and len(results) != len(blocks):
            return f"message {index} mixes tool results with other content"
        answered = {r.tool_use_id for r in results}
        if waiting and waiting - answered:
            missing = ", ".join(sorted(waiting - answered))
            return f"message {index} does not answer the tool use(s) {missing}"
        if answered - waiting:
            unknown = ", ".join(sorted(answered - waiting))
            return f"message {index} has results for no tool use: {unknown}"
        waiting = {b.id for b in blocks if isinstance(b, ToolUseContent)}
    if waiting:
        return f"the tool use(s) {', '.join(sorted(waiting))} of the last message have no results"
    return None


@attrs.frozen(slots=False)
class CreateMessageResult(McpType):
    """The client's answer to ``sampling/createMessage``."""

    role: str = attrs.field(metadata=_meta("role", _str, required=True))
    content: SamplingContent | tuple[SamplingContent, ...] = attrs.field(
        metadata=_meta("content", _content_one_or_many, required=True)
    )
    model: str = attrs.field(metadata=_meta("model", _str, required=True))
    stop_reason: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("stopReason", _str)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class ElicitParams(McpType):
    """Params of ``elicitation/create``: the server asks the user for input."""

    message: str = attrs.field(metadata=_meta("message", _str, required=True))
    requested_schema: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("requestedSchema", _object)
    )
    mode: str | None = attrs.field(default=None, kw_only=True, metadata=_meta("mode", _str))
    url: str | None = attrs.field(default=None, kw_only=True, metadata=_meta("url", _str))
    elicitation_id: str | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("elicitationId", _str)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)


@attrs.frozen(slots=False)
class ElicitResult(McpType):
    """The client's answer to ``elicitation/create``: ``accept``, ``decline`` or ``cancel``."""

    action: str = attrs.field(metadata=_meta("action", _str, required=True))
    content: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("content", _object)
    )
    meta: Mapping[str, Any] | None = attrs.field(
        default=None, kw_only=True, metadata=_meta("_meta", _object)
    )
    extra: Mapping[str, Any] = attrs.field(default=_NO_EXTRA, kw_only=True, repr=False)
