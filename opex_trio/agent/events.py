"""What a chat produces: the results of its tool calls, its result, and the events of a stream.

Every class here is a frozen value. :class:`ChatResult` is what
:meth:`~opex_trio.agent.chat.Chat.chat` returns; :class:`ChatEvent` and its
subclasses are what :meth:`~opex_trio.agent.chat.Chat.stream` yields, and
:class:`ToolResult` is one tool call and its outcome in both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeAlias

import attrs

from ..llm.types import Usage

__all__ = [
    "ChatEvent",
    "ChatFinished",
    "ChatResult",
    "Emit",
    "OnProgress",
    "StopReason",
    "TextDelta",
    "ToolFinished",
    "ToolOutcome",
    "ToolProgress",
    "ToolResult",
    "ToolStarted",
    "TurnFinished",
]

StopReason: TypeAlias = Literal["answered", "max_turns", "stopped_by_hook", "tool_calls_returned"]
"""Why a chat ended."""

ToolOutcome: TypeAlias = Literal[
    "ok", "error", "timeout", "denied", "unknown_tool", "bad_arguments", "unavailable"
]
"""What came of one tool call (anything but ``"ok"`` is a failure the model was told of)."""


@attrs.frozen
class ToolResult:
    """One tool call and what came of it.

    ``name`` is the name the model used, ``server`` the MCP server that ran it
    (``None`` for the program's own tools or when it never ran), ``content``
    what the model reads, ``raw`` what the tool returned (an MCP
    :class:`~opex_trio.protocol.types.CallToolResult` or the executor's value),
    ``error`` the exception behind a failure, ``duration`` seconds of trio time.
    """

    tool_call_id: str
    name: str
    server: str | None
    arguments: Mapping[str, Any] | None
    content: str
    outcome: ToolOutcome
    raw: Any = None
    error: BaseException | None = None
    duration: float = 0.0

    @property
    def is_error(self) -> bool:
        """Whether the call failed (the model was told why)."""
        return self.outcome != "ok"


@attrs.frozen
class ChatResult:
    """What a chat produced.

    ``message`` is the last assistant message, ``messages`` every message the
    chat added to the conversation (assistant and tool messages, in order),
    ``tool_calls`` every call made, ``usage`` the token counts summed over all
    turns (``None`` fields where the server never said), ``stop_reason`` why
    it ended, ``turns`` the number of model calls, ``context`` the final
    context. With ``execute_tools=False``, ``pending_tool_calls`` holds the
    calls the model asked for, as OpenAI dicts, for the caller to run.
    """

    message: dict[str, Any] | None
    messages: tuple[dict[str, Any], ...]
    tool_calls: tuple[ToolResult, ...]
    usage: Usage
    stop_reason: StopReason
    turns: int
    context: Any = None
    pending_tool_calls: tuple[dict[str, Any], ...] = ()

    @property
    def content(self) -> str | None:
        """The text of the last assistant message."""
        return self.message.get("content") if self.message else None


@attrs.frozen
class ChatEvent:
    """Base class of the events :meth:`~opex_trio.agent.chat.Chat.stream` yields.

    ``turn`` counts model calls from 1.
    """

    turn: int


@attrs.frozen
class TextDelta(ChatEvent):
    """A piece of the model's answer."""

    text: str


@attrs.frozen
class ToolStarted(ChatEvent):
    """A tool call began."""

    tool_call_id: str
    name: str
    arguments: Mapping[str, Any] | None


@attrs.frozen
class ToolProgress(ChatEvent):
    """A running MCP tool call reported progress (``notifications/progress``).

    ``progress`` only grows; ``total`` is ``None`` when the server does not
    know it; ``message`` is the server's own words, if any.
    """

    tool_call_id: str
    name: str
    server: str | None
    progress: float
    total: float | None
    message: str | None


OnProgress: TypeAlias = Callable[[ToolProgress], object]
"""Called with each :class:`ToolProgress` of a chat; may be sync or async."""


@attrs.frozen
class ToolFinished(ChatEvent):
    """A tool call ended."""

    result: ToolResult


@attrs.frozen
class TurnFinished(ChatEvent):
    """A turn ended: the model's message and the results of its tool calls are in."""

    message: dict[str, Any]


@attrs.frozen
class ChatFinished(ChatEvent):
    """The chat ended; ``result`` is what :meth:`~opex_trio.agent.chat.Chat.chat` would return."""

    result: ChatResult


Emit: TypeAlias = Callable[[ChatEvent], None]
"""Where the chat loop sends its events when it is streamed."""
