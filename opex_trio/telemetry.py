"""Typed telemetry events and a subscription API.

Every layer reports what it does as a frozen event class from this module and
hands it to :func:`emit`. Subscribers are plain callables registered with
:func:`subscribe`; they run synchronously in the task that emitted the event,
so they must be quick (put the event on a channel if work follows). A
subscriber that raises is logged and skipped: telemetry never breaks a call.

When nobody subscribes, :func:`emit` is one tuple check, and hot paths test
:func:`enabled` before they even build an event.

Example::

    def show(event: opex_trio.telemetry.TelemetryEvent) -> None:
        print(event)

    with opex_trio.telemetry.subscribe(show):
        ...
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import attrs

__all__ = [
    "ChildStateChanged",
    "LLMRequestFinished",
    "LLMRequestStarted",
    "LLMRetry",
    "ServerStateChanged",
    "Subscription",
    "TelemetryEvent",
    "ToolCallFinished",
    "ToolCallStarted",
    "emit",
    "enabled",
    "subscribe",
]

logger = logging.getLogger("opex_trio.telemetry")

Handler = Callable[["TelemetryEvent"], object]


@attrs.frozen
class TelemetryEvent:
    """Base class of all telemetry events."""


@attrs.frozen
class LLMRequestStarted(TelemetryEvent):
    """A chat completion call began (before its first attempt)."""

    model: str
    stream: bool
    base_url: str


@attrs.frozen
class LLMRetry(TelemetryEvent):
    """An LLM attempt failed and will be retried after ``delay`` seconds.

    ``attempt`` is the number of the attempt that failed (1 for the first);
    ``reason`` is a short label (``"status 429"``, ``"ConnectError"``, ...).
    """

    model: str
    attempt: int
    delay: float
    reason: str
    status: int | None = None


@attrs.frozen
class LLMRequestFinished(TelemetryEvent):
    """A chat completion call ended, successfully or not.

    ``outcome`` is ``"ok"`` or the name of the error class; ``duration`` is in
    seconds of trio time and covers every attempt and backoff.
    """

    model: str
    stream: bool
    outcome: str
    duration: float
    attempts: int
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: BaseException | None = None


@attrs.frozen
class ToolCallStarted(TelemetryEvent):
    """A tool call began. ``server`` is ``None`` for a custom (non-MCP) tool."""

    tool: str
    server: str | None
    call_id: str | None = None


@attrs.frozen
class ToolCallFinished(TelemetryEvent):
    """A tool call ended. ``outcome`` is ``"ok"``, ``"error"``, ``"timeout"`` or ``"cancelled"``."""

    tool: str
    server: str | None
    outcome: str
    duration: float
    call_id: str | None = None
    error: BaseException | None = None


@attrs.frozen
class ServerStateChanged(TelemetryEvent):
    """A managed MCP server moved from one state to another."""

    server: str
    state: str
    previous: str | None = None
    error: BaseException | None = None
    restarts: int = 0


@attrs.frozen
class ChildStateChanged(TelemetryEvent):
    """A child of a :class:`~opex_trio.supervision.Supervisor` moved from one state to another.

    ``supervisor`` and ``child`` are names; ``state`` and ``previous`` are
    :data:`~opex_trio.supervision.ChildState` values (``previous`` is ``None``
    for the first event of a child). ``restarts`` counts the restarts so far,
    this one included. ``error`` is what caused the change when something
    failed: the child's exception for ``"restarting"``, the
    :class:`~opex_trio.errors.SupervisionError` for ``"failed"``. ``delay`` is
    the backoff before the next start (``"restarting"`` only) and ``time`` the
    trio clock when the change happened.
    """

    supervisor: str
    child: str
    state: str
    previous: str | None = None
    restarts: int = 0
    error: BaseException | None = None
    delay: float | None = None
    time: float = 0.0


_handlers: tuple[Handler, ...] = ()


class Subscription:
    """A registered telemetry handler; close it (or leave its ``with``) to unsubscribe."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self._closed = False

    def close(self) -> None:
        """Stop delivering events to the handler. Closing twice is harmless."""
        global _handlers
        if not self._closed:
            self._closed = True
            _handlers = tuple(h for h in _handlers if h is not self.handler)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def subscribe(handler: Handler) -> Subscription:
    """Deliver every event emitted from now on to ``handler``.

    The returned :class:`Subscription` is also a context manager.
    """
    global _handlers
    _handlers = (*_handlers, handler)
    return Subscription(handler)


def enabled() -> bool:
    """Whether anyone listens; hot paths skip building events when not."""
    return bool(_handlers)


def emit(event: TelemetryEvent) -> None:
    """Hand ``event`` to every subscriber; a subscriber that raises is logged and skipped."""
    for handler in _handlers:
        try:
            handler(event)
        except Exception:
            logger.exception("telemetry handler %r failed on %s", handler, type(event).__name__)
