"""The MCP client: the requests a program makes of one server.

Theory of operation
-------------------
:class:`McpClient` is the actor of :mod:`opex_trio.mcp._actor` (one
connection, a writer task, a reader task) plus the requests callers make. A
call builds its request with the session (which records it as pending, with
the caller's one-shot reply slot as context), encodes it in the caller's task
(so bad arguments fail there, with a clear error), puts it on the mailbox and
waits on its reply.

Each call has a deadline. It is not a cancel scope, which would cost more
than the rest of the call: the deadline goes on the actor's heap
(:mod:`opex_trio.mcp._deadlines`), whose task fails the reply when it passes.
Then, or when the caller is cancelled, the request leaves the pending table,
the server gets ``notifications/cancelled``, and a late response is dropped.

The typed methods (:meth:`McpClient.list_tools`, :meth:`McpClient.call_tool`
and the rest) build their params, send them with :meth:`McpClient.request`,
follow pagination and parse the results into :mod:`opex_trio.protocol.types`.
The options and the notification types live in :mod:`opex_trio.mcp._options`
and are re-exported here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Literal

import trio

from .._exceptions import copy_error
from ..errors import ConfigError, ProtocolError, RequestTimeoutError, TransportClosedError
from ..protocol.types import (
    CallToolResult,
    CompleteResult,
    GetPromptResult,
    Implementation,
    InitializeResult,
    ListPromptsResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    ListToolsResult,
    McpType,
    Prompt,
    ReadResourceResult,
    Resource,
    ResourceTemplate,
    ServerCapabilities,
    Tool,
)
from ..protocol.versions import Features
from ..transports.base import Outgoing
from ._actor import Actor
from ._deadlines import TIMED_OUT
from ._options import (
    LOG_LEVELS,
    ClientOptions,
    ElicitationHandler,
    Notice,
    ProgressCallback,
    RootsProvider,
    SamplingHandler,
    SessionRenewed,
)
from ._reply import Reply

__all__ = [
    "ClientOptions",
    "ElicitationHandler",
    "McpClient",
    "Notice",
    "ProgressCallback",
    "RootsProvider",
    "SamplingHandler",
    "SessionRenewed",
]

logger = logging.getLogger("opex_trio.mcp")

_MAX_PAGES = 10_000


class McpClient(Actor):
    """A connection to one MCP server, run as an actor.

    ``transport_factory`` opens the connection (see
    :func:`opex_trio.transports.stdio.open_stdio_transport`); ``name`` labels
    the server in logs and errors; ``options`` is a :class:`ClientOptions`.
    Use it as an async context manager, or call :meth:`run` from a supervisor.
    """

    # -- what the server said about itself

    @property
    def initialize_result(self) -> InitializeResult:
        """The server's answer to the handshake."""
        result = self._session.initialize_result
        if result is None:
            raise TransportClosedError(f"MCP server {self.name!r} is not connected yet")
        return result

    @property
    def server_info(self) -> Implementation:
        """The server's name and version."""
        return self.initialize_result.server_info

    @property
    def capabilities(self) -> ServerCapabilities:
        """What the server declared it can do."""
        return self.initialize_result.capabilities

    @property
    def instructions(self) -> str | None:
        """The server's instructions for the model, if it sent any."""
        return self.initialize_result.instructions

    @property
    def protocol_version(self) -> str | None:
        """The negotiated protocol version, once connected."""
        return self._session.protocol_version

    @property
    def features(self) -> Features | None:
        """What the negotiated protocol version allows, once connected."""
        return self._session.features

    # -- requests

    async def request(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | Literal["default"] | None = "default",
        progress: ProgressCallback | None = None,
    ) -> Mapping[str, Any]:
        """Send any request and return its raw result.

        ``timeout`` is in seconds (``None``: wait as long as the caller's own
        cancel scopes allow); ``progress`` receives the server's progress
        notifications for this request. Raises :class:`McpError` for the
        server's JSON-RPC error, :class:`RequestTimeoutError` when the deadline
        passes, and a :class:`~opex_trio.errors.TransportError` when the
        connection fails.
        """
        self._check_usable()
        seconds = self.options.request_timeout if timeout == "default" else timeout
        deadline = math.inf if seconds is None else trio.current_time() + seconds
        reply = await self._exchange(method, params, seconds, deadline, progress)
        if reply.refused:
            # Refused for a session the server forgot, so it never ran: sent once
            # more, in the new session, within the same deadline.
            logger.debug("MCP server %r: sending %s again in the new session", self.name, method)
            self._check_usable()
            reply = await self._exchange(method, params, seconds, deadline, progress)
        if reply.error is not None:
            # Its own instance: the error may be every pending caller's, and a
            # shared one would collect all their frames in its traceback.
            raise copy_error(reply.error)
        assert reply.result is not None
        return reply.result

    async def _exchange(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        seconds: float | None,
        deadline: float,
        progress: ProgressCallback | None,
    ) -> Reply:
        """Send one request; wait for its reply until ``deadline``, ``seconds`` from the call."""
        await self._await_renewal(seconds, deadline, method)
        token: int | None = None
        if progress is not None:
            token = self._progress_tokens()
            meta = dict((params or {}).get("_meta") or {})
            meta["progressToken"] = token
            params = {**(params or {}), "_meta": meta}
        reply = Reply()
        request = self._session.send_request(method, params, context=reply)
        try:
            outgoing = Outgoing.of(request)
        except ConfigError:
            self._session.cancel(request.id, notify=False)
            raise
        queued = False
        if token is not None:
            assert progress is not None
            self._notices.progress[token] = progress
        try:
            try:
                self._mailbox_send.send_nowait(outgoing)
                queued = True
            except trio.WouldBlock:
                # The writer is behind: wait for room, within the deadline.
                with trio.move_on_at(deadline):
                    await self._mailbox_send.send(outgoing)
                    queued = True
                if not queued:
                    self._session.cancel(request.id, notify=False)
                    reply.fail(TIMED_OUT)
            if not reply.done:
                if deadline != math.inf:
                    self._deadlines.add(deadline, reply, request.id)
                # Waiting for the reply is this call's checkpoint (send_nowait
                # spared send()'s two).
                await reply.wait()
        except BaseException:
            # Cancelled by the caller: tell the server, if the request got out.
            if not reply.done:
                self._session.cancel(request.id, "cancelled by the client", notify=queued)
                self._flush()
            raise
        finally:
            if token is not None:
                self._notices.progress.pop(token, None)
        if reply.error is TIMED_OUT:
            assert seconds is not None
            raise RequestTimeoutError(
                f"MCP server {self.name!r} did not answer {method} within {seconds:g} s",
                method=method,
                timeout=seconds,
            )
        return reply

    async def notify(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        """Send a notification (for example ``notifications/roots/list_changed``)."""
        self._check_usable()
        seconds = self.options.request_timeout
        deadline = math.inf if seconds is None else trio.current_time() + seconds
        await self._await_renewal(seconds, deadline, method)
        await self._mailbox_send.send(Outgoing.of(self._session.send_notification(method, params)))

    async def ping(self, *, timeout: float | Literal["default"] | None = "default") -> None:
        """Check that the server answers (health checks use this).

        The modern era has no ``ping``: there the check is ``server/discover``,
        which every modern server answers and which changes nothing.
        """
        features = self.features
        method = "server/discover" if features is not None and not features.ping else "ping"
        await self.request(method, timeout=timeout)

    async def list_tools(self) -> list[Tool]:
        """Every tool the server offers, all pages followed."""
        return [t for page in await self._pages("tools/list", ListToolsResult) for t in page.tools]

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | Literal["default"] | None = "default",
        progress: ProgressCallback | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> CallToolResult:
        """Call a tool and return its result.

        A tool that failed comes back as a result with ``is_error`` set (that
        is the tool's answer, for the model to read); an error of the protocol
        (unknown tool, bad params) raises :class:`McpError`.
        """
        if type(name) is not str or not name:
            raise ConfigError(f"tool name must be a non-empty string, got {name!r}")
        # An exact dict is the common case; the ABC check is slower.
        if arguments is not None and type(arguments) is not dict:
            if not isinstance(arguments, Mapping):
                raise ConfigError(
                    f"arguments of tool {name!r} must be an object, got {type(arguments).__name__}"
                )
            arguments = dict(arguments)
        params: dict[str, Any] = {"name": name, "arguments": arguments or {}}
        if meta:
            params["_meta"] = dict(meta)
        try:
            result = await self.request("tools/call", params, timeout=timeout, progress=progress)
        except ConfigError as exc:
            raise ConfigError(f"arguments of tool {name!r} cannot be sent: {exc}") from exc
        try:
            return CallToolResult.from_dict(result)
        except ProtocolError as exc:
            raise ProtocolError(
                f"MCP server {self.name!r}, result of tool {name!r}: {exc}"
            ) from exc

    async def list_resources(self) -> list[Resource]:
        """Every resource the server lists, all pages followed."""
        pages = await self._pages("resources/list", ListResourcesResult)
        return [r for page in pages for r in page.resources]

    async def list_resource_templates(self) -> list[ResourceTemplate]:
        """Every resource template the server lists, all pages followed."""
        pages = await self._pages("resources/templates/list", ListResourceTemplatesResult)
        return [t for page in pages for t in page.resource_templates]

    async def read_resource(self, uri: str) -> ReadResourceResult:
        """Read one resource."""
        return ReadResourceResult.from_dict(await self.request("resources/read", {"uri": uri}))

    async def subscribe_resource(self, uri: str) -> None:
        """Ask for ``notifications/resources/updated`` when ``uri`` changes."""
        await self.request("resources/subscribe", {"uri": uri})

    async def unsubscribe_resource(self, uri: str) -> None:
        """Stop updates for ``uri``."""
        await self.request("resources/unsubscribe", {"uri": uri})

    async def list_prompts(self) -> list[Prompt]:
        """Every prompt the server offers, all pages followed."""
        pages = await self._pages("prompts/list", ListPromptsResult)
        return [p for page in pages for p in page.prompts]

    async def get_prompt(
        self, name: str, arguments: Mapping[str, str] | None = None
    ) -> GetPromptResult:
        """Render a prompt with its arguments."""
        params: dict[str, Any] = {"name": name}
        if arguments:
            params["arguments"] = dict(arguments)
        return GetPromptResult.from_dict(await self.request("prompts/get", params))

    async def complete(
        self,
        ref: Mapping[str, Any],
        argument: str,
        value: str,
        *,
        context_arguments: Mapping[str, str] | None = None,
    ) -> CompleteResult:
        """Ask for completions of an argument of a prompt or resource template.

        ``ref`` is ``{"type": "ref/prompt", "name": ...}`` or
        ``{"type": "ref/resource", "uri": ...}``.
        """
        params: dict[str, Any] = {"ref": dict(ref), "argument": {"name": argument, "value": value}}
        if context_arguments:
            params["context"] = {"arguments": dict(context_arguments)}
        return CompleteResult.from_dict(await self.request("completion/complete", params))

    async def set_logging_level(self, level: str) -> None:
        """Ask the server to send log messages at ``level`` and above."""
        if level not in LOG_LEVELS:
            raise ConfigError(
                f"unknown logging level {level!r}; use one of {', '.join(LOG_LEVELS)}"
            )
        await self.request("logging/setLevel", {"level": level})

    async def _pages(self, method: str, page_type: type[Any]) -> list[Any]:
        pages: list[McpType] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            params = {"cursor": cursor} if cursor is not None else None
            page = page_type.from_dict(await self.request(method, params), method)
            pages.append(page)
            cursor = page.next_cursor
            if cursor is None:
                return pages
            if cursor in seen:
                raise ProtocolError(
                    f"MCP server {self.name!r} repeated cursor {cursor!r} in {method}"
                )
            seen.add(cursor)
        raise ProtocolError(
            f"MCP server {self.name!r} sent more than {_MAX_PAGES} pages of {method}"
        )
