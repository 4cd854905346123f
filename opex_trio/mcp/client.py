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
from typing import Any, Literal, TypeAlias

import attrs
import trio

from .._exceptions import copy_error
from ..errors import (
    CapabilityError,
    ConfigError,
    McpError,
    ProtocolError,
    RequestTimeoutError,
    TransportClosedError,
    UsageError,
)
from ..protocol.jsonrpc import RequestId
from ..protocol.modern import CacheHints
from ..protocol.tasks import task_handle
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
    ProgressParams,
    Prompt,
    ReadResourceResult,
    Resource,
    ResourceTemplate,
    ServerCapabilities,
    Tool,
)
from ..protocol.versions import Era, Features
from ..transports.base import Outgoing
from . import _tasks
from ._actor import Actor
from ._deadlines import TIMED_OUT
from ._options import (
    LOG_LEVELS,
    ClientOptions,
    ElicitationHandler,
    Notice,
    ProgressCallback,
    RequestingServer,
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
    "RequestingServer",
    "RootsProvider",
    "SamplingHandler",
    "SessionRenewed",
]

logger = logging.getLogger("opex_trio.mcp")

_MAX_PAGES = 10_000

_LISTING_CAPABILITY = {
    "resources/list": "resources",
    "resources/templates/list": "resources",
    "prompts/list": "prompts",
}
"""Listings a server offers only with a capability (tools are listed regardless)."""

_INF = math.inf

Timeout: TypeAlias = float | Literal["default"] | None
"""Seconds, ``None`` for no deadline, or ``"default"`` for the client's option."""


@attrs.define
class _Timing:
    """The deadlines of one call; never changed once made (``attrs.evolve`` makes another).

    ``deadline`` bounds the whole call, ``seconds`` after it began (``None``
    and infinity: no bound). ``idle`` is set when progress restarts the
    deadline: then the call also fails after ``idle`` seconds without progress.
    Made for every call, so not frozen: a frozen attrs class pays a method
    call per field where this one assigns plainly.
    """

    seconds: float | None
    deadline: float
    idle: float | None


def _result(reply: Reply) -> Mapping[str, Any]:
    """The result of an answered request, or its error raised."""
    if reply.error is not None:
        # Its own instance: the error may be every pending caller's, and a
        # shared one would collect all their frames in its traceback.
        raise copy_error(reply.error)
    assert reply.result is not None
    return reply.result


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

    @property
    def runs_tasks(self) -> bool:
        """Whether the server declared that it runs tool calls as tasks (either era's way).

        :meth:`call_tool` follows such a call to its end; see :mod:`opex_trio.mcp._tasks`.
        """
        features = self._session.features
        result = self._session.initialize_result
        if features is None or result is None:
            return False
        return _tasks.runs_tasks(result.capabilities, features.era)

    # -- requests

    async def request(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: Timeout = "default",
        progress: ProgressCallback | None = None,
        reset_on_progress: bool | None = None,
        max_total_timeout: Timeout = "default",
    ) -> Mapping[str, Any]:
        """Send any request and return its raw result.

        ``timeout`` is in seconds (``None``: wait as long as the caller's own
        cancel scopes allow); ``progress`` receives the server's progress
        notifications for this request. With ``reset_on_progress`` (by default
        the option of the same name) ``timeout`` is an idle deadline that each
        progress notification restarts, and ``max_total_timeout`` bounds the
        whole call. Raises :class:`McpError` for the server's JSON-RPC error,
        :class:`RequestTimeoutError` when the deadline passes, and a
        :class:`~opex_trio.errors.TransportError` when the connection fails.
        """
        self._check_usable()
        timing = self._timing(timeout, reset_on_progress, max_total_timeout)
        return await self._request(method, params, timing, progress)

    def _timing(
        self, timeout: Timeout, reset_on_progress: bool | None, max_total_timeout: Timeout
    ) -> _Timing:
        options = self.options
        seconds = options.request_timeout if timeout == "default" else timeout
        reset = options.reset_on_progress if reset_on_progress is None else reset_on_progress
        if not reset or seconds is None:
            return _Timing(seconds, _INF if seconds is None else self._now() + seconds, None)
        total = options.max_total_timeout if max_total_timeout == "default" else max_total_timeout
        return _Timing(total, _INF if total is None else self._now() + total, seconds)

    async def _request(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        timing: _Timing,
        progress: ProgressCallback | None,
    ) -> Mapping[str, Any]:
        reply = await self._exchange(method, params, timing, progress)
        if reply.refused:
            reply = await self._resend(method, params, timing, progress)
        return _result(reply)

    async def _resend(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        timing: _Timing,
        progress: ProgressCallback | None,
    ) -> Reply:
        # Refused for a session the server forgot, so it never ran: sent once
        # more, in the new session, within the same deadline.
        logger.debug("MCP server %r: sending %s again in the new session", self.name, method)
        self._check_usable()
        return await self._exchange(method, params, timing, progress)

    async def _exchange(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        timing: _Timing,
        progress: ProgressCallback | None,
    ) -> Reply:
        """Send one request; wait for its reply until its deadline."""
        idle = timing.idle
        deadline = timing.deadline
        # The first deadline: the whole call's, or the first idle period's.
        first = deadline if idle is None else min(deadline, self._now() + idle)
        if self._renewing is not None:
            await self._await_renewal(timing.seconds if idle is None else idle, first, method)
        token: int | None = None
        if progress is not None or idle is not None:
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
            on_progress = progress
            if idle is not None:
                on_progress = self._progress_resetting(reply, request.id, idle, deadline, progress)
            assert on_progress is not None
            self._notices.progress[token] = on_progress
        try:
            try:
                self._mailbox_send.send_nowait(outgoing)
                queued = True
            except trio.WouldBlock:
                # The writer is behind: wait for room, within the deadline.
                with trio.move_on_at(first):
                    await self._mailbox_send.send(outgoing)
                    queued = True
                if not queued:
                    self._session.cancel(request.id, notify=False)
                    reply.fail(TIMED_OUT)
            if not reply.done:
                if first != _INF:
                    self._deadlines.add(first, reply, request.id)
                # Waiting for the reply is this call's checkpoint (send_nowait
                # spared send()'s two); what reply.wait() does, without its frame.
                await trio.lowlevel.wait_task_rescheduled(reply.park())
        except BaseException:
            # Cancelled by the caller: tell the server, if the request got out.
            if not reply.done:
                self._session.cancel(request.id, "cancelled by the client", notify=queued)
                self._flush()
            raise
        finally:
            if token is not None:
                self._notices.progress.pop(token, None)
                if idle is not None:
                    self._deadlines.forget(request.id)
        if reply.error is TIMED_OUT:
            if idle is not None and trio.current_time() < deadline:
                raise RequestTimeoutError(
                    f"MCP server {self.name!r} sent no answer or progress for {method} "
                    f"within {idle:g} s",
                    method=method,
                    timeout=idle,
                )
            assert timing.seconds is not None
            total = "its maximum total of " if idle is not None else ""
            raise RequestTimeoutError(
                f"MCP server {self.name!r} did not answer {method} within "
                f"{total}{timing.seconds:g} s",
                method=method,
                timeout=timing.seconds,
            )
        return reply

    def _progress_resetting(
        self,
        reply: Reply,
        request_id: RequestId,
        idle: float,
        deadline: float,
        progress: ProgressCallback | None,
    ) -> ProgressCallback:
        """A progress callback that restarts the call's idle deadline, then calls ``progress``."""
        deadlines = self._deadlines

        def on_progress(params: ProgressParams) -> object:
            deadlines.reset(min(deadline, trio.current_time() + idle), reply, request_id)
            return progress(params) if progress is not None else None

        return on_progress

    async def notify(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        """Send a notification (for example ``notifications/roots/list_changed``)."""
        self._check_usable()
        seconds = self.options.request_timeout
        deadline = math.inf if seconds is None else trio.current_time() + seconds
        await self._await_renewal(seconds, deadline, method)
        await self._mailbox_send.send(Outgoing.of(self._session.send_notification(method, params)))

    async def set_roots(self, roots: RootsProvider) -> None:
        """Replace the roots and tell the server (``notifications/roots/list_changed``).

        Roots are ``file://`` URIs (:class:`ConfigError` otherwise). The client
        must have been made with ``roots`` (an empty list will do), since the
        capability is declared when the session opens.
        """
        if self.options.roots is None:
            raise UsageError(
                f"McpClient for {self.name!r} was made without roots, so it did not declare "
                "them; give ClientOptions(roots=[]) to change them later"
            )
        self.options = attrs.evolve(self.options, roots=roots)
        if self.connected:
            await self.notify("notifications/roots/list_changed")

    async def ping(self, *, timeout: Timeout = "default") -> None:
        """Check that the server answers (health checks use this).

        The modern era has no ``ping``: there the check is ``server/discover``,
        which every modern server answers and which changes nothing.
        """
        features = self.features
        method = "server/discover" if features is not None and not features.ping else "ping"
        await self.request(method, timeout=timeout)

    async def list_tools(self, *, timeout: Timeout = "default") -> list[Tool]:
        """Every tool the server offers, all pages followed within ``timeout``."""
        pages = await self._pages("tools/list", ListToolsResult, timeout)
        return [t for page in pages for t in page.tools]

    async def list_tools_with_hints(
        self, *, timeout: Timeout = "default"
    ) -> tuple[list[Tool], CacheHints | None]:
        """Every tool, with the listing's caching hints (``ttlMs``, ``cacheScope``).

        The hints are ``None`` when the server gave none (every legacy server):
        then the list stays good until the server says it changed.
        """
        pages = await self._pages("tools/list", ListToolsResult, timeout)
        tools = [t for page in pages for t in page.tools]
        return tools, CacheHints.of_pages([page.extra for page in pages])

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: Timeout = "default",
        progress: ProgressCallback | None = None,
        meta: Mapping[str, Any] | None = None,
        reset_on_progress: bool | None = None,
        max_total_timeout: Timeout = "default",
        task: bool = False,
    ) -> CallToolResult:
        """Call a tool and return its result.

        A tool that failed comes back as a result with ``is_error`` set (that
        is the tool's answer, for the model to read); an error of the protocol
        (unknown tool, bad params) raises :class:`McpError`. The deadlines are
        those of :meth:`request`: a long tool that reports progress can run
        past ``timeout`` with ``reset_on_progress``.

        A server may run the call as a task (:attr:`runs_tasks`): the call then
        follows the task until it ends, within the same deadlines, answers the
        input it asks for with the client's handlers, and cancels it when the
        caller is cancelled or the deadline passes. A modern server decides
        alone; a legacy (2025-11-25) server runs a task when asked: ``task=True``,
        which a tool whose ``execution.taskSupport`` is ``"required"`` needs.
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
        self._check_usable()
        timing = self._timing(timeout, reset_on_progress, max_total_timeout)
        if task and self.runs_tasks:
            result = await _tasks.call_tool(self, name, params, timing, progress, ask_task=True)
        else:
            # What _tasks.call_tool does when no task is asked for, without its
            # frames and those of _request(): this is every tool call's path.
            try:
                reply = await self._exchange("tools/call", params, timing, progress)
                if reply.refused:
                    reply = await self._resend("tools/call", params, timing, progress)
                result = _result(reply)
            except ConfigError as exc:
                # Raised where the request is encoded: the arguments cannot be sent.
                raise ConfigError(f"arguments of tool {name!r} cannot be sent: {exc}") from exc
            # Only a result with a resultType can be a task handle.
            handle = task_handle(result, legacy=False) if "resultType" in result else None
            if handle is not None:
                result = await _tasks.follow(self, name, handle, timing, progress)
        try:
            return CallToolResult.from_dict(result)
        except ProtocolError as exc:
            raise ProtocolError(
                f"MCP server {self.name!r}, result of tool {name!r}: {exc}"
            ) from exc

    async def list_resources(self, *, timeout: Timeout = "default") -> list[Resource]:
        """Every resource the server lists, all pages followed within ``timeout``."""
        pages = await self._pages("resources/list", ListResourcesResult, timeout)
        return [r for page in pages for r in page.resources]

    async def list_resource_templates(
        self, *, timeout: Timeout = "default"
    ) -> list[ResourceTemplate]:
        """Every resource template the server lists, all pages followed within ``timeout``."""
        pages = await self._pages("resources/templates/list", ListResourceTemplatesResult, timeout)
        return [t for page in pages for t in page.resource_templates]

    async def read_resource(self, uri: str, *, timeout: Timeout = "default") -> ReadResourceResult:
        """Read one resource."""
        self._require("resources", "resources/read")
        result = await self.request("resources/read", {"uri": uri}, timeout=timeout)
        return ReadResourceResult.from_dict(result)

    async def subscribe_resource(self, uri: str, *, timeout: Timeout = "default") -> None:
        """Ask for ``notifications/resources/updated`` when ``uri`` changes.

        The client remembers the URI and subscribes to it again in every new
        session: one it opens because the server forgot the old one, and (see
        :meth:`restore_subscriptions`) the client a supervisor starts after a
        restart. The updates reach :meth:`subscribe` as
        :class:`~opex_trio.protocol.session.ResourceUpdated`. In the modern era,
        which has no ``resources/subscribe``, the URI joins the filter of the
        ``subscriptions/listen`` stream, and this returns once the server
        acknowledged the new stream.
        """
        if type(uri) is not str or not uri:
            raise ConfigError(f"a resource URI must be a non-empty string, got {uri!r}")
        self._require("resources", "resources/subscribe", "subscribe")
        if self._modern():
            known = uri in self._subscriptions.uris
            self._subscriptions.remember([uri])
            try:
                await self._relisten("resources/subscribe", timeout)
            except (McpError, ProtocolError):
                if not known:
                    # Refused: the old stream is cancelled already, so listen
                    # again for what was asked before, without this URI.
                    self._subscriptions.uris.pop(uri, None)
                    self._listen()
                raise
            return
        await self.request("resources/subscribe", {"uri": uri}, timeout=timeout)
        self._subscriptions.remember([uri])

    async def unsubscribe_resource(self, uri: str, *, timeout: Timeout = "default") -> None:
        """Stop updates for ``uri``, and forget it: a new session does not subscribe to it."""
        self._require("resources", "resources/unsubscribe", "subscribe")
        self._subscriptions.uris.pop(uri, None)
        if self._modern():
            await self._relisten("resources/unsubscribe", timeout)
            return
        await self.request("resources/unsubscribe", {"uri": uri}, timeout=timeout)

    @property
    def subscribed_resources(self) -> tuple[str, ...]:
        """The URIs subscribed to (and not unsubscribed from), in the order they were."""
        return tuple(self._subscriptions.uris)

    def restore_subscriptions(self, uris: tuple[str, ...] | list[str]) -> None:
        """Subscribe to ``uris`` as soon as the session opens, before the client is ready.

        For a client that takes over from one that ended (a supervisor's
        restart): give it the old client's :attr:`subscribed_resources`. A
        server that refuses one, or no longer offers subscriptions, is logged
        as a warning; the client still opens.
        """
        if self._session.initialize_result is not None:
            raise UsageError(
                f"McpClient for {self.name!r}: restore_subscriptions is for a client that has "
                "not connected yet; use subscribe_resource"
            )
        self._subscriptions.remember(uris)

    def _modern(self) -> bool:
        features = self.features
        return features is not None and features.era is Era.MODERN

    async def _relisten(self, method: str, timeout: Timeout) -> None:
        """Listen with the current filter; wait, within ``timeout``, for its acknowledgment."""
        self._check_usable()
        timing = self._timing(timeout, False, None)
        await self._await_renewal(timing.seconds, timing.deadline, method)
        await self._subscriptions.acknowledged(
            self._listen(), method, timing.seconds, timing.deadline
        )

    async def list_prompts(self, *, timeout: Timeout = "default") -> list[Prompt]:
        """Every prompt the server offers, all pages followed within ``timeout``."""
        pages = await self._pages("prompts/list", ListPromptsResult, timeout)
        return [p for page in pages for p in page.prompts]

    async def get_prompt(
        self,
        name: str,
        arguments: Mapping[str, str] | None = None,
        *,
        timeout: Timeout = "default",
    ) -> GetPromptResult:
        """Render a prompt with its arguments."""
        self._require("prompts", "prompts/get")
        params: dict[str, Any] = {"name": name}
        if arguments:
            params["arguments"] = dict(arguments)
        return GetPromptResult.from_dict(await self.request("prompts/get", params, timeout=timeout))

    async def complete(
        self,
        ref: Mapping[str, Any],
        argument: str,
        value: str,
        *,
        context_arguments: Mapping[str, str] | None = None,
        timeout: Timeout = "default",
    ) -> CompleteResult:
        """Ask for completions of an argument of a prompt or resource template.

        ``ref`` is ``{"type": "ref/prompt", "name": ...}`` or
        ``{"type": "ref/resource", "uri": ...}``.
        """
        self._require("completions", "completion/complete")
        params: dict[str, Any] = {"ref": dict(ref), "argument": {"name": argument, "value": value}}
        if context_arguments:
            params["context"] = {"arguments": dict(context_arguments)}
        result = await self.request("completion/complete", params, timeout=timeout)
        return CompleteResult.from_dict(result)

    async def set_logging_level(self, level: str, *, timeout: Timeout = "default") -> None:
        """Ask the server to send log messages at ``level`` and above."""
        if level not in LOG_LEVELS:
            raise ConfigError(
                f"unknown logging level {level!r}; use one of {', '.join(LOG_LEVELS)}"
            )
        self._require("logging", "logging/setLevel")
        await self.request("logging/setLevel", {"level": level}, timeout=timeout)

    def _require(self, capability: str, method: str, feature: str | None = None) -> None:
        """Refuse ``method`` at once when the server did not declare what it needs.

        The typed methods check; :meth:`request` sends anything.
        """
        result = self._session.initialize_result
        if result is None:
            return  # a new session is opening; its answer decides
        declared = getattr(result.capabilities, capability)
        if declared is not None and (feature is None or declared.get(feature) is True):
            return
        name = capability if feature is None else f"{capability}.{feature}"
        raise CapabilityError(
            f"MCP server {self.name!r} did not declare the {name!r} capability, "
            f"so {method} was not sent",
            capability=name,
            method=method,
            server=self.name,
        )

    async def _pages(self, method: str, page_type: type[Any], timeout: Timeout) -> list[Any]:
        """Every page of a listing; ``timeout`` bounds them all together."""
        self._check_usable()
        kind = _LISTING_CAPABILITY.get(method)
        if kind is not None:
            self._require(kind, method)
        timing = self._timing(timeout, False, None)
        pages: list[McpType] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            params = {"cursor": cursor} if cursor is not None else None
            page = page_type.from_dict(await self._request(method, params, timing, None), method)
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
