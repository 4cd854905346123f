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

from ..errors import ConfigError, McpError, ProtocolError
from ..protocol import jsonrpc
from ..protocol.jsonrpc import Request
from ..protocol.session import LogReceived, ProgressReceived
from ..protocol.types import CreateMessageParams, ElicitParams, McpType, sampling_problem
from ._options import (
    LOG_LEVELS,
    ClientOptions,
    Notice,
    ProgressCallback,
    RequestingServer,
    checked_roots,
)
from .elicitation import check_answer

__all__ = ["Notices", "answer", "error_answer"]

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


async def answer(
    options: ClientOptions, request: Request, server: RequestingServer
) -> Mapping[str, Any]:
    """The result for ``server``'s request, from the handlers in ``options``.

    A handler that takes one more argument than the request's params is given
    ``server`` too. Raises :class:`McpError` (method not found) for a request
    no option answers, invalid params for an elicitation in a mode the client
    did not declare; the caller sends it back as the JSON-RPC error.
    """
    params = request.params or {}
    if request.method == "roots/list":
        roots: Any = options.roots
        if callable(roots):
            listed = await (roots(server) if _takes(roots, 1) else roots())
        else:
            listed = roots or ()
        return {"roots": checked_roots(listed)}
    if request.method == "sampling/createMessage" and options.sampling_handler is not None:
        sample: Any = options.sampling_handler
        message = CreateMessageParams.from_dict(params)
        _check_sampling(options, message)
        result = await (sample(message, server) if _takes(sample, 2) else sample(message))
        return _as_dict(result)
    if request.method == "elicitation/create" and options.elicitation_handler is not None:
        elicit: Any = options.elicitation_handler
        asked = ElicitParams.from_dict(params)
        # No mode is the form mode (the only one before 2025-11-25).
        mode = asked.mode or "form"
        if mode not in options.elicitation_modes:
            raise McpError(
                jsonrpc.INVALID_PARAMS,
                f"elicitation mode {mode!r} was not declared by this client "
                f"(it declared {', '.join(options.elicitation_modes)})",
            )
        answered = _as_dict(await (elicit(asked, server) if _takes(elicit, 2) else elicit(asked)))
        if answered.get("action") == "accept" and mode == "form":
            problem = check_answer(asked.requested_schema, answered.get("content", {}))
            if problem is not None:
                # The handler's mistake: the server gets an error, not a bad answer.
                raise ConfigError(
                    f"the elicitation handler's answer does not match the requested schema: "
                    f"{problem}"
                )
        return answered
    raise McpError(jsonrpc.METHOD_NOT_FOUND, f"method not supported: {request.method}")


def error_answer(exc: Exception, method: str, server: str) -> tuple[int, str, Any]:
    """The JSON-RPC error (code, message, data) that answers a server request which raised ``exc``.

    An :class:`~opex_trio.errors.McpError` goes back as it is, a request we
    could not read as invalid params; anything else is a bug in a handler,
    logged with its traceback and answered as an internal error.
    """
    if isinstance(exc, McpError):
        return exc.code, exc.message, exc.data
    if isinstance(exc, ProtocolError):
        return jsonrpc.INVALID_PARAMS, str(exc), None
    logger.error("answering %s from MCP server %r failed", method, server, exc_info=exc)
    return jsonrpc.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}", None


def _check_sampling(options: ClientOptions, message: CreateMessageParams) -> None:
    # The spec: tools or toolChoice without the sampling.tools capability is an error.
    if (message.tools is not None or message.tool_choice is not None) and (
        "tools" not in options.declared_sampling()
    ):
        raise McpError(
            jsonrpc.INVALID_PARAMS,
            "sampling with tools was not declared by this client "
            "(no sampling.tools capability); send the request without tools or toolChoice",
        )
    problem = sampling_problem(message)
    if problem is not None:
        raise McpError(jsonrpc.INVALID_PARAMS, f"invalid sampling messages: {problem}")


def _takes(function: Callable[..., Any], count: int) -> bool:
    """Whether ``function`` accepts ``count`` positional arguments."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return False
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, McpType):
        return value.to_dict()
    if isinstance(value, Mapping):
        return dict(value)
    raise ConfigError(f"a handler must return a mapping or an MCP type, got {type(value).__name__}")
