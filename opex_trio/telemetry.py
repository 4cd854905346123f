"""Typed telemetry events, subscriptions, and OpenTelemetry spans made from them.

Every layer reports what it does as a frozen event class from this module and
hands it to :func:`emit`:

* :class:`LLMRequestStarted`, :class:`LLMRetry`, :class:`LLMRequestFinished`
  (the LLM client; one ``request_id`` ties a call's events together);
* :class:`ToolCallStarted`, :class:`ToolCallFinished` (the chat loop; paired
  by server, tool and ``call_id``);
* :class:`ServerStateChanged` (the MCP session manager);
* :class:`ChildStateChanged` (the supervisor).

There are three ways to listen:

* :func:`subscribe` registers a plain callable. It runs synchronously in the
  task that emitted the event, so it must be quick; one that raises is logged
  and skipped: telemetry never breaks a call.
* :func:`open_stream` delivers events on a bounded trio memory channel for a
  consumer task, dropping events rather than ever making an emitter wait.
* :func:`instrument` turns events into OpenTelemetry spans when the optional
  ``opentelemetry-api`` is installed (the ``otel`` extra).

When nobody listens, :func:`emit` is one tuple check, and hot paths test
:func:`enabled` before they even build an event.

Example::

    def show(event: opex_trio.telemetry.TelemetryEvent) -> None:
        print(event)

    with opex_trio.telemetry.subscribe(show):
        ...
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any, Literal

import attrs
import trio

from .errors import ConfigError

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
    "instrument",
    "open_stream",
    "subscribe",
]

logger = logging.getLogger("opex_trio.telemetry")

Handler = Callable[["TelemetryEvent"], object]


@attrs.frozen
class TelemetryEvent:
    """Base class of all telemetry events."""


@attrs.frozen
class LLMRequestStarted(TelemetryEvent):
    """A chat completion call began (before its first attempt).

    ``request_id`` is unique within the process; the call's
    :class:`LLMRetry` and :class:`LLMRequestFinished` events carry the same one.
    """

    request_id: int
    model: str
    stream: bool
    base_url: str


@attrs.frozen
class LLMRetry(TelemetryEvent):
    """An LLM attempt failed and will be retried after ``delay`` seconds.

    ``attempt`` is the number of the attempt that failed (1 for the first);
    ``reason`` is a short label (``"status 429"``, ``"ConnectError"``, ...);
    ``status`` is the HTTP status of the failed attempt, if it got one.
    """

    request_id: int
    model: str
    attempt: int
    delay: float
    reason: str
    status: int | None = None


@attrs.frozen
class LLMRequestFinished(TelemetryEvent):
    """A chat completion call ended, successfully or not.

    ``outcome`` is ``"ok"``, ``"incomplete"`` (a stream left before its end
    without an error) or the name of the error class. ``duration`` is the
    call's latency in seconds of trio time: every attempt and backoff, and for
    a stream everything up to the end of its ``async with``.
    ``time_to_first_chunk`` (streams only) is the time until the first event
    arrived. ``attempts`` counts the HTTP attempts. Token counts, the
    ``response_model`` and ``response_id`` and the choices'
    ``finish_reasons`` are what the server reported (``None`` or empty when it
    did not say, or when the call failed); ``error`` is the exception a failed
    call raised.
    """

    request_id: int
    model: str
    stream: bool
    outcome: str
    duration: float
    attempts: int
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: BaseException | None = None
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: tuple[str, ...] = ()
    time_to_first_chunk: float | None = None


@attrs.frozen
class ToolCallStarted(TelemetryEvent):
    """A tool call began. ``server`` is ``None`` for a custom (non-MCP) tool.

    ``call_id`` is the model's id for the call; a start and its
    :class:`ToolCallFinished` are paired by ``(server, tool, call_id)``.
    """

    tool: str
    server: str | None
    call_id: str | None = None


@attrs.frozen
class ToolCallFinished(TelemetryEvent):
    """A tool call ended.

    ``outcome`` is ``"ok"``, ``"error"``, ``"timeout"`` or ``"cancelled"``;
    ``duration`` is in seconds of trio time; ``error`` is what went wrong, if
    anything was raised.
    """

    tool: str
    server: str | None
    outcome: str
    duration: float
    call_id: str | None = None
    error: BaseException | None = None


@attrs.frozen
class ServerStateChanged(TelemetryEvent):
    """A managed MCP server moved from one state to another.

    ``state`` and ``previous`` are :data:`~opex_trio.mcp.manager.ServerState`
    values (``previous`` is ``None`` for a server's first event); ``error`` is
    what made it leave ``"ready"`` or fail; ``restarts`` counts its restarts.
    """

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

    def __init__(self, handler: Handler, on_close: Callable[[], object] | None = None) -> None:
        self.handler = handler
        self._on_close = on_close
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether the handler no longer receives events."""
        return self._closed

    def close(self) -> None:
        """Stop delivering events to the handler. Closing twice is harmless."""
        global _handlers
        if self._closed:
            return
        self._closed = True
        # Remove this registration only: the same callable may be subscribed twice.
        for position, handler in enumerate(_handlers):
            if handler is self.handler:
                _handlers = _handlers[:position] + _handlers[position + 1 :]
                break
        if self._on_close is not None:
            self._on_close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def subscribe(handler: Handler, *, on_close: Callable[[], object] | None = None) -> Subscription:
    """Deliver every event emitted from now on to ``handler``.

    The handler runs synchronously in the task that emits, so it must not
    block; one that raises is logged and skipped. ``on_close``, if given, is
    called once when the subscription is closed. The returned
    :class:`Subscription` is also a context manager.
    """
    global _handlers
    if not callable(handler):
        raise ConfigError(f"a telemetry handler must be callable, got {handler!r}")
    if on_close is not None and not callable(on_close):
        raise ConfigError(f"on_close must be callable or None, got {on_close!r}")
    _handlers = (*_handlers, handler)
    return Subscription(handler, on_close)


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


@contextlib.contextmanager
def open_stream(
    max_buffer: int = 1024,
    *,
    drop: Literal["oldest", "newest"] = "oldest",
    event_types: type[TelemetryEvent] | tuple[type[TelemetryEvent], ...] = TelemetryEvent,
) -> Iterator[trio.MemoryReceiveChannel[TelemetryEvent]]:
    """Receive events on a trio memory channel, for a consumer task.

    ::

        with opex_trio.telemetry.open_stream(event_types=ToolCallFinished) as events:
            nursery.start_soon(record, events)
            ...

    Only instances of ``event_types`` are delivered. Emitting never waits
    for the consumer: when ``max_buffer`` events are waiting, ``drop`` says
    which one is lost, the ``"oldest"`` waiting one (the default) or the
    ``"newest"``, the one being emitted; the first loss of a stream is logged
    as a warning. Leaving the ``with`` unsubscribes and closes the sending
    side, so a consumer's ``async for`` ends once it has read what is left.
    Use it from the trio thread that runs the code emitting events.
    """
    if isinstance(max_buffer, bool) or not isinstance(max_buffer, int) or max_buffer < 1:
        raise ConfigError(f"max_buffer must be an int >= 1, got {max_buffer!r}")
    if drop not in ("oldest", "newest"):
        raise ConfigError(f"drop must be 'oldest' or 'newest', got {drop!r}")
    wanted = event_types if isinstance(event_types, tuple) else (event_types,)
    if not wanted or not all(
        isinstance(kind, type) and issubclass(kind, TelemetryEvent) for kind in wanted
    ):
        raise ConfigError(
            f"event_types must be TelemetryEvent classes or a tuple of them, got {event_types!r}"
        )
    send, receive = trio.open_memory_channel[TelemetryEvent](max_buffer)
    # A receive end of our own: it takes out the oldest event when the buffer
    # is full, and keeps the channel open if the consumer closes its end early.
    spare = receive.clone()
    dropped = 0

    def deliver(event: TelemetryEvent) -> None:
        nonlocal dropped
        if not isinstance(event, wanted):
            return
        try:
            send.send_nowait(event)
        except trio.WouldBlock:
            if not dropped:
                logger.warning(
                    "a telemetry stream is full (max_buffer=%d): dropping the %s events",
                    max_buffer,
                    drop,
                )
            dropped += 1
            if drop == "oldest":
                spare.receive_nowait()
                send.send_nowait(event)
        except trio.ClosedResourceError:
            pass

    def close_channels() -> None:
        send.close()
        spare.close()

    with subscribe(deliver, on_close=close_channels):
        yield receive


def instrument(tracer_provider: Any = None, *, provider_name: str | None = None) -> Subscription:
    """Turn the events into OpenTelemetry spans, until the returned subscription is closed.

    LLM calls become ``chat {model}`` spans, tool calls ``execute_tool
    {tool}`` spans and MCP server state changes spans of their own, with the
    attributes of the OpenTelemetry GenAI semantic conventions (see
    :mod:`opex_trio._otel` for the exact mapping). ``tracer_provider``
    defaults to the global one; ``provider_name`` sets
    ``gen_ai.provider.name`` instead of deriving it from the client's
    ``base_url``. Each call subscribes anew, so instrument once.

    Needs the OpenTelemetry API (``pip install 'opex_trio[otel]'``); without it
    this raises :class:`~opex_trio.errors.ConfigError`. Nothing imports
    OpenTelemetry before this function is called.
    """
    try:
        from . import _otel
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] != "opentelemetry":
            raise
        raise ConfigError(
            "telemetry.instrument() needs the OpenTelemetry API, which is not installed;"
            " install the otel extra: pip install 'opex_trio[otel]'"
        ) from exc
    return _otel.instrument(tracer_provider, provider_name=provider_name)
