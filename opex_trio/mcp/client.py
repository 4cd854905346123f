"""The MCP client: the requests a program makes of one server.

Theory of operation
-------------------
:class:`McpClient` is the actor of :mod:`opex_trio.mcp._actor` (one
connection, a writer task, a reader task) plus the requests callers make. A
call builds its request with the session (which records it as pending, with
the caller's one-shot reply slot as context), encodes it in the caller's task
(so bad arguments fail there, with a clear error), puts it on the mailbox and
waits on its reply.

How one request travels, with its deadline, is
:mod:`opex_trio.mcp._request_path`'s; this module holds what the server said
about itself and the typed requests.

The typed methods (:meth:`McpClient.list_tools`, :meth:`McpClient.call_tool`
and the rest) build their params, send them with :meth:`McpClient.request`,
follow pagination and parse the results into :mod:`opex_trio.protocol.types`.
The options and the notification types live in :mod:`opex_trio.mcp._options`
and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ..errors import (
    CapabilityError,
    ConfigError,
    McpError,
    ProtocolError,
    TransportClosedError,
    UsageError,
)
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
    Prompt,
    ReadResourceResult,
    Resource,
    ResourceTemplate,
    ServerCapabilities,
    Tool,
)
from ..protocol.versions import Era, Features
from . import _tasks
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
from ._request_path import RequestPath, Timeout
from ._request_path import result as _result

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


_MAX_PAGES = 10_000

_LISTING_CAPABILITY = {
    "resources/list": "resources",
    "resources/templates/list": "resources",
    "prompts/list": "prompts",
}
"""Listings a server offers only with a capability (tools are listed regardless)."""


class McpClient(RequestPath):
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

    # -- typed requests

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
