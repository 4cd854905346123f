"""What an MCP server sends unasked: notifications for subscribers, and requests to answer.

:class:`Notices` fans the server's notifications out: progress to the callback
of the call it belongs to, log messages to the ``opex_trio.mcp`` logger and the
``on_log`` option, and every notification to the subscribers of
:meth:`~opex_trio.mcp.client.McpClient.subscribe`. A slow subscriber loses
events rather than stall the connection. :func:`answer` computes the answer to
a server's request (``roots/list``, ``sampling/createMessage``,
``elicitation/create``) from the client's options.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import trio

from ..errors import ConfigError, McpError
from ..protocol import jsonrpc
from ..protocol.jsonrpc import Request
from ..protocol.session import LogReceived, ProgressReceived
from ..protocol.types import CreateMessageParams, ElicitParams, McpType
from ._options import LOG_LEVELS, ClientOptions, Notice, ProgressCallback

__all__ = ["Notices", "answer"]

logger = logging.getLogger("opex_trio.mcp")


class Notices:
    """The notification side of one client: progress callbacks, logs, subscribers.

    ``nursery`` is where async user callbacks run; the actor sets it while it
    runs (without one, an async callback's awaitable is dropped).
    """

    def __init__(self, name: str, options: ClientOptions) -> None:
        self.name = name
        self.options = options
        self.progress: dict[str | int, ProgressCallback] = {}
        self.nursery: trio.Nursery | None = None
        self._subscribers: list[trio.MemorySendChannel[Notice]] = []

    def on_progress(self, event: ProgressReceived) -> None:
        callback = self.progress.get(event.params.progress_token)
        if callback is not None:
            self._call_user(callback, event.params, "progress callback")
        self.publish(event)

    def on_log(self, event: LogReceived) -> None:
        params = event.params
        level = LOG_LEVELS.get(params.level, logging.INFO)
        logger.log(level, "[%s %s] %s", self.name, params.logger or "server", params.data)
        if self.options.on_log is not None:
            self._call_user(self.options.on_log, params, "on_log")
        self.publish(event)

    def _call_user(self, callback: Callable[[Any], object], arg: Any, what: str) -> None:
        try:
            result = callback(arg)
        except Exception:
            logger.exception("the %s for MCP server %r raised", what, self.name)
            return
        if inspect.isawaitable(result) and self.nursery is not None:
            self.nursery.start_soon(self._await_user, result, what)

    async def _await_user(self, awaitable: Awaitable[object], what: str) -> None:
        try:
            await awaitable
        except Exception:
            logger.exception("the %s for MCP server %r raised", what, self.name)

    def publish(self, event: Notice) -> None:
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(event)
            except trio.WouldBlock:
                logger.warning(
                    "a notification subscriber of MCP server %r is not keeping up; dropped %s",
                    self.name,
                    type(event).__name__,
                )
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.remove(channel)

    @asynccontextmanager
    async def subscribe(self, buffer: int) -> AsyncIterator[trio.MemoryReceiveChannel[Notice]]:
        send, receive = trio.open_memory_channel[Notice](buffer)
        self._subscribers.append(send)
        try:
            async with receive:
                yield receive
        finally:
            if send in self._subscribers:
                self._subscribers.remove(send)
            await send.aclose()


async def answer(options: ClientOptions, request: Request) -> Mapping[str, Any]:
    """The result for a server's request, from the handlers in ``options``.

    Raises :class:`McpError` (method not found) for a request no option
    answers; the caller sends it back as the JSON-RPC error.
    """
    params = request.params or {}
    if request.method == "roots/list":
        roots = options.roots
        listed = await roots() if callable(roots) else roots or ()
        return {"roots": [_as_dict(r) for r in listed]}
    if request.method == "sampling/createMessage" and options.sampling_handler is not None:
        result: Any = await options.sampling_handler(CreateMessageParams.from_dict(params))
        return _as_dict(result)
    if request.method == "elicitation/create" and options.elicitation_handler is not None:
        result = await options.elicitation_handler(ElicitParams.from_dict(params))
        return _as_dict(result)
    raise McpError(jsonrpc.METHOD_NOT_FOUND, f"method not supported: {request.method}")


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, McpType):
        return value.to_dict()
    if isinstance(value, Mapping):
        return dict(value)
    raise ConfigError(f"a handler must return a mapping or an MCP type, got {type(value).__name__}")
