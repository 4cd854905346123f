"""What the chat workflow and its activities send each other, and the step keys.

These are the wire format of a durable run: plain dataclasses of JSON values,
which Temporal's default data converter stores in the run's history. Nothing
here imports trio or does IO, so the workflow sandbox can load it.

Idempotency keys
----------------
Every model call and tool call of a run carries a key made of the workflow
run's id and the step (:func:`step_key`): the same step gets the same key on
every attempt, on any worker; two steps never share one. Temporal runs
activities at least once (a worker that dies mid-call leaves the call to be
run again elsewhere), so a tool with side effects should remember the keys it
has completed and answer a repeat with its first result instead of acting
again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

__all__ = [
    "MODEL_ACTIVITY",
    "TOOL_ACTIVITY",
    "WORKFLOW_NAME",
    "ChatSpec",
    "DurableEvent",
    "DurableResult",
    "ModelOutcome",
    "ModelStep",
    "ToolOutcome",
    "ToolStep",
    "step_key",
]

WORKFLOW_NAME = "opex_trio.chat"
"""The name the durable chat workflow is registered under."""
MODEL_ACTIVITY = "opex_trio.model_call"
"""The name of the activity that makes one model call."""
TOOL_ACTIVITY = "opex_trio.tool_call"
"""The name of the activity that makes one tool call."""


def step_key(run_id: str, turn: int, step: str) -> str:
    """The idempotency key of one step (``"model"`` or ``"tool-N"``) of a run's turn."""
    return f"{run_id}/turn-{turn}/{step}"


@dataclass(frozen=True)
class ChatSpec:
    """Everything a durable chat needs: the options of :meth:`opex_trio.Chat.chat` and more.

    ``servers``, ``allow_tools`` and ``deny_tools`` select the worker's MCP
    tools as :class:`opex_trio.Chat` does. ``model_timeout`` bounds one model
    call (each attempt), ``heartbeat_timeout`` is how long a worker may go
    silent before its call is given to another worker, ``max_attempts`` bounds
    the attempts of each step (0: no bound).
    """

    model: str
    messages: list[dict[str, Any]]
    system_prompt: str | None = None
    servers: list[str] | None = None
    allow_tools: list[str] | None = None
    deny_tools: list[str] = field(default_factory=list)
    execute_tools: bool = True
    context: Any = None
    max_turns: int = 10
    tool_timeout: float | None = 60.0
    parallel_tool_calls: bool = True
    tool_result_role: str = "tool"
    llm_options: dict[str, Any] = field(default_factory=dict)
    model_timeout: float = 300.0
    heartbeat_timeout: float = 10.0
    max_attempts: int = 0

    def __post_init__(self) -> None:
        # Checked where the spec is made (the caller's program), not in the
        # workflow, where a bad value would only stall the run.
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError(f"model must be a non-empty string, got {self.model!r}")
        if not isinstance(self.messages, list) or not all(
            isinstance(m, dict) for m in self.messages
        ):
            raise ConfigError("messages must be a list of OpenAI message dicts")
        if not isinstance(self.max_turns, int) or self.max_turns < 1:
            raise ConfigError(f"max_turns must be at least 1, got {self.max_turns!r}")
        for name in ("model_timeout", "heartbeat_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.tool_timeout is not None and not (
            isinstance(self.tool_timeout, int | float) and self.tool_timeout > 0
        ):
            raise ConfigError(
                f"tool_timeout must be a positive number of seconds or None, "
                f"got {self.tool_timeout!r}"
            )
        if not isinstance(self.max_attempts, int) or self.max_attempts < 0:
            raise ConfigError(f"max_attempts must be 0 or more, got {self.max_attempts!r}")

    def replace(self, **changes: Any) -> ChatSpec:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ModelStep:
    """One model call: the conversation so far and the tools it may use."""

    key: str
    turn: int
    model: str
    messages: list[dict[str, Any]]
    servers: list[str] | None
    allow_tools: list[str] | None
    deny_tools: list[str]
    parallel_tool_calls: bool
    llm_options: dict[str, Any]


@dataclass(frozen=True)
class ModelOutcome:
    """The model's message (``content`` never null), its tool calls, and the tokens it used."""

    message: dict[str, Any]
    tool_calls: list[dict[str, Any]]
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


@dataclass(frozen=True)
class ToolStep:
    """One tool call, as the model asked for it (an OpenAI ``tool_calls`` entry)."""

    key: str
    turn: int
    call: dict[str, Any]
    servers: list[str] | None
    allow_tools: list[str] | None
    deny_tools: list[str]
    timeout: float | None
    context: Any = None


@dataclass(frozen=True)
class ToolOutcome:
    """What came of a tool call: the fields of :class:`opex_trio.ToolResult` that travel.

    ``images`` are OpenAI image content parts to show the model (when the
    worker attaches tool images); ``key`` is the step's idempotency key.
    """

    tool_call_id: str
    name: str
    server: str | None
    arguments: dict[str, Any] | None
    content: str
    outcome: str
    duration: float
    key: str
    images: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_error(self) -> bool:
        """Whether the call failed (the model was told why)."""
        return self.outcome != "ok"


@dataclass(frozen=True)
class DurableEvent:
    """A step of a durable chat, as :meth:`DurableRun.events` reports it.

    ``seq`` counts events from 0; ``kind`` is ``"model_call_finished"`` (with
    ``message``), ``"tool_call_started"`` (``tool``: the model's call),
    ``"tool_call_finished"`` (``tool``: the fields of a :class:`ToolOutcome`),
    ``"turn_finished"`` or ``"chat_finished"`` (``result``).
    """

    seq: int
    kind: str
    turn: int
    message: dict[str, Any] | None = None
    tool: dict[str, Any] | None = None
    result: DurableResult | None = None


@dataclass(frozen=True)
class DurableResult:
    """What a durable chat produced: the fields of :class:`opex_trio.ChatResult` that travel."""

    message: dict[str, Any] | None
    messages: list[dict[str, Any]]
    tool_calls: list[ToolOutcome]
    stop_reason: str
    turns: int
    context: Any = None
    pending_tool_calls: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None

    @property
    def content(self) -> str | None:
        """The text of the last assistant message."""
        return self.message.get("content") if self.message else None
