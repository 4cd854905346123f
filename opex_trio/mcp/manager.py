"""The session manager: many MCP servers, each a supervised actor, one tool registry, their lists.

Theory of operation
-------------------
:class:`SessionManager` owns a :class:`~opex_trio.supervision.Supervisor`.
Each server is one supervised child that runs an
:class:`~opex_trio.mcp.client.McpClient` (connect, handshake), loads the
server's tools, reports itself ready, then runs two helpers next to the
client: a listener that reloads the tools when the server says they changed,
and a health check that pings the server every ``interval`` seconds. When the
connection breaks or the health check gives up, the child fails and the
supervisor starts it again after its backoff; when failures come faster than
the restart intensity allows, the server ends ``"failed"``. Servers start in
parallel and independently: one that is slow or broken never holds up another,
:meth:`SessionManager.add_server`, or the manager.

A server's state is one of :data:`ServerState`; every change is a
:class:`~opex_trio.telemetry.ServerStateChanged` event, sent to telemetry and
to the streams of :meth:`SessionManager.events`.

Calls wait for their server. :meth:`SessionManager.call_tool` waits until the
server is ready, within the call's own deadline, then calls it; when the
deadline passes first it raises :class:`~opex_trio.errors.ServerUnavailableError`.
A call in flight when its server dies fails with the connection's error; it is
sent again after the restart only when the tool is annotated read-only or
idempotent and :attr:`ServerOptions.resend_idempotent` allows it, so a tool
with side effects never runs twice behind the caller's back.

The registry names every server's tools with :func:`~opex_trio.mcp.naming.assign_names`
(unique, stable, provider-valid), after each server's allow and deny filters.
A server's last known tools stay in the registry while it restarts, so names
do not come and go with a crash; they are reloaded after every reconnect, on
``notifications/tools/list_changed``, and after every new session.

The manager also caches each server's resources, resource templates and
prompts (:meth:`SessionManager.resources`, :meth:`SessionManager.resource_templates`,
:meth:`SessionManager.prompts`, no round trip): listed just after the server is
ready (in the background, so a slow listing never holds up its tools), again on
``notifications/resources/list_changed`` and ``notifications/prompts/list_changed``,
after every restart and renewed session, and kept while the server restarts.

Resource subscriptions (:meth:`SessionManager.subscribe_resource`) outlive the
connection: the client remembers them, a renewed session and the client a
restart makes subscribe again before calls go on, and the updates of every
server come on :meth:`SessionManager.resource_updates`, whose streams survive
restarts.

A remote server that forgot our session (an HTTP 404: it expired the session,
or it is a new process behind the same URL) is no crash: the actor opens a new
session on the same connection. The server stays ``"ready"`` and no restart
is counted; calls made meanwhile wait for the new session, and the tools and
the server's info are reloaded from it.

Where the code lives: this module keeps the servers, their states and the
registry (the bookkeeping and the public API); ``_server`` is the record
kept for one server and the wait for it to be ready; ``_server_run`` is one
server's supervised run (connect, load tools, listen, health checks);
``_calls`` is the call path (deadlines, output checks, the resend policy);
``_listings`` loads the cached resources and prompts;
``_state_events`` hands state changes to the :meth:`SessionManager.events`
subscribers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Literal

import trio

from .. import telemetry
from .._exceptions import detached, one_exception
from ..errors import ConfigError, ServerUnavailableError, TransportError, UsageError
from ..protocol.types import CallToolResult, Prompt, Resource, ResourceTemplate
from ..supervision import ChildHandle, Supervisor
from ..telemetry import ChildStateChanged, ServerStateChanged
from ..transports.base import TransportFactory
from ._calls import call_server_tool
from ._listings import load_listings
from ._server import ServerEntry, ready_client, unavailable
from ._server_run import ServerRunner
from ._state_events import StateStreams
from .client import ClientOptions, McpClient, ProgressCallback, RootsProvider
from .config import ServerConfig, parse_server, server_id
from .naming import assign_names
from .options import (
    FINAL_STATES,
    HealthCheck,
    RegisteredTool,
    ResourceUpdate,
    ServerOptions,
    ServerState,
    ServerStatus,
    transport_factory,
)

__all__ = [
    "HealthCheck",
    "RegisteredTool",
    "ResourceUpdate",
    "ServerOptions",
    "ServerState",
    "ServerStatus",
    "SessionManager",
    "transport_factory",
]

logger = logging.getLogger("opex_trio.mcp.manager")


class SessionManager:
    """Runs many MCP servers under supervision and keeps one registry of their tools.

    ``options`` are the defaults for every server (each :meth:`add_server`
    may give its own). Use it as ``async with SessionManager() as mcp:``;
    leaving the block stops every server and leaves no process behind. Calls
    that start, stop or use servers raise :class:`~opex_trio.errors.UsageError`
    outside that block (the snapshots, :meth:`servers`, :meth:`status` and
    :meth:`tools`, work at any time).

    ``roots`` are the roots of every server whose own client options give
    none (``file://`` URIs; an empty list declares the capability so that
    :meth:`set_roots` can fill it later).
    """

    def __init__(
        self,
        *,
        options: ServerOptions | None = None,
        name: str = "mcp",
        roots: RootsProvider | None = None,
    ) -> None:
        self.options = options or ServerOptions()
        self.name = name
        # Checked as ClientOptions checks them.
        self._roots = ClientOptions(roots=roots).roots
        self._servers: dict[str, ServerEntry] = {}
        self._supervisor: Supervisor | None = None
        self._events: StateStreams[ServerStateChanged] = StateStreams()
        self._updates: StateStreams[ResourceUpdate] = StateStreams()
        self._runner = ServerRunner(
            set_state=self._set_state,
            tools_changed=self._rebuild_registry,
            roots=lambda: self._roots,
            resource_updated=self._on_resource_updated,
        )
        self._registry: dict[str, RegisteredTool] = {}
        self._by_server: dict[tuple[str, str], str] = {}
        self._closed = False
        # Removed servers whose task may not have ended yet (a cancelled removal).
        self._stopping: dict[str, ChildHandle] = {}

    # -- lifetime

    async def __aenter__(self) -> SessionManager:
        if self._supervisor is not None:
            raise UsageError(f"{self!r} can be entered only once; make a new SessionManager")
        self._supervisor = Supervisor(self.name, on_event=self._on_child_event)
        await self._supervisor.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> bool:
        assert self._supervisor is not None
        try:
            # A cancellation that arrives while the servers stop joins the
            # block's own exception in a group; the caller gets one of them.
            block = exc_info[1]
            with one_exception([block] if isinstance(block, BaseException) else []):
                return await self._supervisor.__aexit__(*exc_info)
        finally:
            for entry in self._servers.values():
                self._set_state(entry, "stopped")
            self._closed = True
            self._events.close()
            self._updates.close()

    def __repr__(self) -> str:
        return f"SessionManager(name={self.name!r})"

    @property
    def _streams(self) -> list[Any]:
        # The open subscriptions of events(), for tests that check none leaks.
        return self._events.streams

    def _sup(self) -> Supervisor:
        """The supervisor of an open manager; :class:`UsageError` for any other."""
        if self._supervisor is None:
            raise UsageError("use the SessionManager inside 'async with SessionManager() as mcp:'")
        if self._closed:
            raise UsageError(f"{self!r} is closed; make a new SessionManager")
        return self._supervisor

    # -- servers

    async def add_server(
        self,
        config: ServerConfig | Mapping[str, Any] | TransportFactory,
        *,
        name: str | None = None,
        options: ServerOptions | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> str:
        """Start a server and return its id (``name``, or a stable id derived from the config).

        ``config`` is a seed-style dict (``{"command", "args", "env"}`` or
        ``{"url", "auth_token", "execution_id"}``), a typed configuration, or a
        function that opens a transport (then ``name`` is required).
        The server starts in the background; with ``wait=True`` this waits
        until it is ready (within ``timeout``) and raises
        :class:`ServerUnavailableError` if it failed or is not ready in time.
        """
        supervisor = self._sup()
        parsed: ServerConfig | TransportFactory
        if callable(config):
            if not name:
                raise ConfigError("a server given as a transport factory needs a name")
            parsed = config
        else:
            parsed = parse_server(config, name=name)
        sid = name or server_id(parsed)  # type: ignore[arg-type]
        if sid in self._servers and self._servers[sid].state not in FINAL_STATES:
            raise ConfigError(f"a server with id {sid!r} is already running")
        stopping = self._stopping.get(sid)
        if stopping is not None:
            # A removal of this id was cancelled before its task ended; the
            # new task takes the name only once the old one is gone, so no
            # late event of the old one is taken for the new one's.
            await stopping.stop()
            if self._stopping.get(sid) is stopping:
                del self._stopping[sid]
            if sid in self._servers and self._servers[sid].state not in FINAL_STATES:
                raise ConfigError(f"a server with id {sid!r} is already running")
        entry = ServerEntry(sid, parsed, options or self.options)
        self._servers[sid] = entry
        self._emit(entry, "starting", None)
        entry.handle = supervisor.start_soon(
            self._runner.serve, entry, name=sid, policy=entry.options.restart
        )
        if wait:
            await self.wait_ready(sid, timeout=timeout)
        return sid

    async def remove_server(self, server_id: str) -> None:
        """Stop a server and forget it.

        Its calls in flight fail with :class:`ServerUnavailableError`. The
        server leaves the list and its tools the registry at once, before its
        connection has closed, so a removal that is cancelled while it waits
        for that still leaves nothing behind (the server goes on stopping, and
        :meth:`add_server` of the same id waits until it has).
        """
        self._sup()
        entry = self._entry(server_id)
        if entry.client is not None:
            entry.client.abort(
                ServerUnavailableError(
                    f"MCP server {server_id!r} was removed", server=server_id, state="stopped"
                )
            )
        self._set_state(entry, "stopped")
        del self._servers[server_id]
        self._rebuild_registry()
        if entry.handle is not None:
            self._stopping[server_id] = entry.handle
            await entry.handle.stop()
            if self._stopping.get(server_id) is entry.handle:
                del self._stopping[server_id]

    def servers(self) -> list[ServerStatus]:
        """A snapshot of every server, in the order they were added."""
        return [self.status(sid) for sid in self._servers]

    def status(self, server_id: str) -> ServerStatus:
        """A snapshot of one server."""
        entry = self._entry(server_id)
        return ServerStatus(
            id=entry.id,
            state=entry.state,
            protocol_version=entry.protocol_version,
            server_info=entry.server_info,
            last_error=entry.last_error,
            restarts=entry.restarts,
            tools=tuple(t.name for t in entry.tools),
            instructions=entry.instructions,
            runs_tasks=entry.runs_tasks,
            left_out=dict(entry.left_out),
        )

    def client(self, server_id: str) -> McpClient:
        """The client of a ready server, for resources, prompts and the rest.

        While it renews a session the server forgot, its calls wait for the new one.
        """
        self._sup()
        entry = self._entry(server_id)
        client = entry.ready_client()
        if client is None:
            raise unavailable(entry)
        return client

    def events(self, max_buffer: int = 256) -> trio.MemoryReceiveChannel[ServerStateChanged]:
        """Subscribe to server state changes from now on.

        The manager never waits for a reader: when ``max_buffer`` events wait,
        the oldest is dropped. The channel ends when the manager closes; close
        it to unsubscribe (the manager forgets it and writes to it no more).
        """
        return self._events.subscribe(max_buffer, closed=self._closed)

    async def wait_ready(self, *server_ids: str, timeout: float | None = None) -> None:
        """Wait until the servers (all of them when none is named) are ready.

        Raises :class:`ServerUnavailableError` for a server that failed, was
        stopped, or is not ready when ``timeout`` seconds have passed.
        """
        self._sup()
        ids = server_ids or tuple(self._servers)
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        for sid in ids:
            await ready_client(self._entry(sid), deadline)

    async def set_roots(self, roots: RootsProvider) -> None:
        """Replace the roots of every server that has none of its own, and tell them.

        Each connected one gets ``notifications/roots/list_changed``; one that
        is restarting asks for them when it is back.
        """
        self._sup()
        if self._roots is None:
            raise UsageError(
                "this SessionManager was made without roots, so its servers did not declare "
                "them; give SessionManager(roots=[]) to set them later"
            )
        self._roots = ClientOptions(roots=roots).roots
        for entry in list(self._servers.values()):
            client = entry.client
            if entry.options.client.roots is not None or client is None:
                continue
            try:
                await client.set_roots(roots)
            except (TransportError, UsageError) as exc:
                logger.debug("MCP server %r: roots not sent now (%s)", entry.id, exc)

    # -- calls

    async def call_tool(
        self,
        server_id: str,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | Literal["default"] | None = "default",
        progress: ProgressCallback | None = None,
        reset_on_progress: bool | None = None,
        max_total_timeout: float | Literal["default"] | None = "default",
    ) -> CallToolResult:
        """Call a tool of one server by its own name.

        Waits for the server within the call's deadline (``timeout``, by
        default the server's ``call_timeout``); see the module docstring for
        what happens when the server dies during the call. With
        ``reset_on_progress`` (by default that of the server's
        :class:`~opex_trio.mcp.client.ClientOptions`) ``timeout`` is an idle
        deadline each progress report restarts, and ``max_total_timeout`` (by
        default the server's) bounds the whole call.
        """
        self._sup()
        return await call_server_tool(
            self._entry(server_id),
            name,
            arguments,
            timeout=timeout,
            progress=progress,
            reset_on_progress=reset_on_progress,
            max_total_timeout=max_total_timeout,
        )

    async def call(
        self,
        registry_name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | Literal["default"] | None = "default",
        progress: ProgressCallback | None = None,
        reset_on_progress: bool | None = None,
        max_total_timeout: float | Literal["default"] | None = "default",
    ) -> CallToolResult:
        """Call a tool by its registry name; the options are those of :meth:`call_tool`."""
        self._sup()
        registered = self._registry.get(registry_name)
        if registered is None:
            raise ConfigError(f"no tool named {registry_name!r} in the registry")
        return await self.call_tool(
            registered.server,
            registered.tool.name,
            arguments,
            timeout=timeout,
            progress=progress,
            reset_on_progress=reset_on_progress,
            max_total_timeout=max_total_timeout,
        )

    def tools(self, *server_ids: str) -> dict[str, RegisteredTool]:
        """The registry: every tool (of the named servers, or all) under its registry name.

        A tool list whose ``ttlMs`` has passed is reloaded in the background;
        this use gets the list as it was (see :meth:`fresh_tools`).
        """
        self._runner.note_use(self._servers.values())
        return self._snapshot(server_ids)

    def _snapshot(self, server_ids: tuple[str, ...]) -> dict[str, RegisteredTool]:
        if not server_ids:
            return dict(self._registry)
        wanted = set(server_ids)
        return {k: v for k, v in self._registry.items() if v.server in wanted}

    def registry_name(self, server_id: str, tool_name: str) -> str:
        """The registry name of a server's tool."""
        try:
            return self._by_server[(server_id, tool_name)]
        except KeyError:
            raise ConfigError(f"server {server_id!r} has no tool {tool_name!r}") from None

    async def fresh_tools(self, *server_ids: str) -> dict[str, RegisteredTool]:
        """The registry as :meth:`tools` gives it, once the stale tool lists are reloaded.

        A modern server says how long its tool list stays fresh (``ttlMs``);
        the lists of the named servers (all when none is named) that have gone
        stale are listed again first. A reload that fails keeps the old list.
        """
        self._sup()
        entries = [self._entry(sid) for sid in server_ids] or list(self._servers.values())
        async with trio.open_nursery() as nursery:
            for entry in entries:
                nursery.start_soon(self._runner.refresh_stale, entry)
        return self._snapshot(server_ids)

    async def refresh_tools(self, server_id: str) -> None:
        """Reload a ready server's tools now."""
        client = self.client(server_id)
        await self._runner.load_tools(self._entry(server_id), client)

    # -- resources and prompts

    def resources(self, server_id: str) -> tuple[Resource, ...]:
        """The server's resources, as last listed (no round trip; see the module docstring)."""
        return self._entry(server_id).resources

    def resource_templates(self, server_id: str) -> tuple[ResourceTemplate, ...]:
        """The server's resource templates, as last listed (no round trip)."""
        return self._entry(server_id).resource_templates

    def prompts(self, server_id: str) -> tuple[Prompt, ...]:
        """The server's prompts, as last listed (no round trip)."""
        return self._entry(server_id).prompts

    async def refresh_listings(self, server_id: str) -> None:
        """List a ready server's resources, resource templates and prompts again now."""
        client = self.client(server_id)
        await load_listings(self._entry(server_id), client)

    async def subscribe_resource(
        self, server_id: str, uri: str, *, timeout: float | None = None
    ) -> None:
        """Watch a resource of one server; its changes come on :meth:`resource_updates`.

        Waits for the server within ``timeout`` (then the request's own
        deadline applies). The subscription outlives the connection: after a
        restart or a renewed session the server is asked again, before calls
        to it go on, and updates keep coming on the same streams.
        """
        self._sup()
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        client = await ready_client(self._entry(server_id), deadline)
        await client.subscribe_resource(uri)

    async def unsubscribe_resource(
        self, server_id: str, uri: str, *, timeout: float | None = None
    ) -> None:
        """Stop watching a resource; it is not subscribed to again after a restart."""
        self._sup()
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        client = await ready_client(self._entry(server_id), deadline)
        await client.unsubscribe_resource(uri)

    def resource_updates(self, max_buffer: int = 256) -> trio.MemoryReceiveChannel[ResourceUpdate]:
        """Subscribe to the updates of every watched resource, of every server, from now on.

        The stream outlives restarts of the servers. As with :meth:`events`,
        the oldest update is dropped when ``max_buffer`` wait, the channel ends
        when the manager closes, and closing it unsubscribes.
        """
        return self._updates.subscribe(max_buffer, closed=self._closed)

    # -- internals

    def _on_resource_updated(self, entry: ServerEntry, uri: str) -> None:
        if self._servers.get(entry.id) is entry:
            self._updates.publish(ResourceUpdate(entry.id, uri))

    def _entry(self, server_id: str) -> ServerEntry:
        entry = self._servers.get(server_id)
        if entry is None:
            known = ", ".join(map(repr, self._servers)) or "none"
            raise ServerUnavailableError(
                f"no MCP server {server_id!r} (servers: {known})",
                server=server_id,
                state="unknown",
            )
        return entry

    def _on_child_event(self, event: ChildStateChanged) -> None:
        entry = self._servers.get(event.child)
        if entry is None:
            return
        # Kept and handed to subscribers: what a user reads, not the frames it passed.
        error = detached(event.error) if event.error is not None else None
        if error is not None:
            entry.last_error = error
        if event.state == "restarting" or (event.state == "starting" and event.restarts > 0):
            self._set_state(entry, "restarting", error)
        elif event.state == "failed":
            self._set_state(entry, "failed", error)
        elif event.state in ("stopped", "done"):
            self._set_state(entry, "stopped")

    def _set_state(
        self, entry: ServerEntry, state: ServerState, error: BaseException | None = None
    ) -> None:
        previous = entry.state
        if previous == state or self._servers.get(entry.id) is not entry:
            # A removed server is "stopped" for good, whatever its task does
            # while it winds down.
            return
        entry.state = state
        entry.changed.set()
        entry.changed = trio.Event()
        self._emit(entry, state, previous, error)

    def _emit(
        self,
        entry: ServerEntry,
        state: ServerState,
        previous: str | None,
        error: BaseException | None = None,
    ) -> None:
        event = ServerStateChanged(
            server=entry.id, state=state, previous=previous, error=error, restarts=entry.restarts
        )
        if telemetry.enabled():
            telemetry.emit(event)
        self._events.publish(event)

    def _rebuild_registry(self) -> None:
        pairs = [(entry.id, tool.name) for entry in self._servers.values() for tool in entry.tools]
        names = assign_names((), pairs)
        by_key = {
            (entry.id, tool.name): tool for entry in self._servers.values() for tool in entry.tools
        }
        self._registry = {
            names[(sid, tool_name)]: RegisteredTool(names[(sid, tool_name)], sid, tool)
            for (sid, tool_name), tool in sorted(by_key.items())
        }
        self._by_server = {(r.server, r.tool.name): name for name, r in self._registry.items()}
