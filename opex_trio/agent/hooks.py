"""What the chat loop's hooks may return, and how they are called.

Every hook may be a plain function or an ``async`` one. What a hook returns
steers the loop:

* ``on_assistant_message(message, context)`` and
  ``on_tool_result(tool_call_id, name, result, context)`` return ``None`` (go
  on), :class:`Continue` (go on, with ``context=`` a new context for later
  hooks and tools) or :class:`Stop` (end the chat after this message, with an
  optional reason and new context). Stop works from both hooks.
* ``custom_tool_executor(name, arguments, context)`` returns the tool's result
  (a string, anything JSON can carry, or an MCP
  :class:`~opex_trio.protocol.types.CallToolResult`), or :data:`NOT_MINE` (or
  raises :class:`NotMine`) for a tool it does not handle, which then goes to
  the MCP servers. Any other exception is the tool's failure: the model is told
  its message, the log gets one WARNING line (the traceback at DEBUG).
* ``before_tool_call(name, arguments, context)`` returns ``None`` or
  :class:`Approve` (run the call), :class:`Deny` (do not run it; the model is
  told the reason) or :class:`Rewrite` (run it with other arguments).

A hook that raises any other exception stops the chat: the exception
propagates to the caller with a note naming the hook; it is never swallowed.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeAlias

import attrs

__all__ = [
    "NOT_MINE",
    "UNCHANGED",
    "Approve",
    "BeforeToolCallHook",
    "Continue",
    "CustomToolExecutor",
    "Deny",
    "NotMine",
    "OnAssistantMessage",
    "OnToolResult",
    "Rewrite",
    "Stop",
    "call_hook",
    "describe",
    "run_hook",
]


class _Unchanged:
    """The context stays as it is."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged()
"""Marks a hook result that leaves the context alone."""


class _NotMine:
    def __repr__(self) -> str:
        return "NOT_MINE"


NOT_MINE: Final = _NotMine()
"""Returned by a ``custom_tool_executor`` for a tool it does not handle."""


class NotMine(Exception):
    """Raised by a ``custom_tool_executor`` for a tool it does not handle.

    It means the same as returning :data:`NOT_MINE`.
    """


@attrs.frozen
class Continue:
    """Go on; ``context`` (when given) replaces the context for what follows."""

    context: Any = UNCHANGED


@attrs.frozen
class Stop:
    """End the chat after this message; ``context`` (when given) becomes the final context."""

    reason: str | None = None
    context: Any = UNCHANGED


@attrs.frozen
class Approve:
    """Run the tool call as the model asked."""


@attrs.frozen
class Deny:
    """Do not run the tool call; ``reason`` is what the model is told."""

    reason: str = "the call was denied"


@attrs.frozen
class Rewrite:
    """Run the tool call with these arguments instead of the model's."""

    arguments: Mapping[str, Any]


OnAssistantMessage: TypeAlias = Callable[[dict[str, Any], Any], Any]
"""``on_assistant_message(message, context)``: returns None, :class:`Continue` or :class:`Stop`."""
OnToolResult: TypeAlias = Callable[[str, str, Any, Any], Any]
"""``on_tool_result(tool_call_id, name, result, context)``: returns None, Continue or Stop."""
CustomToolExecutor: TypeAlias = Callable[[str, dict[str, Any], Any], Any]
"""``custom_tool_executor(name, arguments, context)``: the result, or :data:`NOT_MINE`."""
BeforeToolCallHook: TypeAlias = Callable[[str, dict[str, Any], Any], Any]
"""``before_tool_call(name, arguments, context)``: None, Approve, Deny or Rewrite."""


async def call_hook(hook: Callable[..., Any], *args: Any) -> Any:
    """Call a sync or async hook and return what it returned."""
    result = hook(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


async def run_hook(label: str, hook: Callable[..., Any], *args: Any) -> Any:
    """Call a hook; an exception it raises goes on with a note naming the hook."""
    try:
        return await call_hook(hook, *args)
    except Exception as exc:
        exc.add_note(f"raised by the {label} hook ({describe(hook)})")
        raise


def describe(hook: Callable[..., Any] | None) -> str:
    """A short name for a hook in error notes."""
    if hook is None:
        return "hook"
    return getattr(hook, "__qualname__", None) or repr(hook)


Hook: TypeAlias = Callable[..., Awaitable[Any] | Any]
