"""The session manager: many MCP servers, each a supervised actor, and one tool registry.

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

A remote server that forgot our session (an HTTP 404: it expired the session,
or it is a new process behind the same URL) is no crash: the actor opens a new
session on the same connection. The server stays ``"ready"`` and no restart
is counted; calls made meanwhile wait for the new session, and the tools and
the server's info are reloaded from it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Literal

import trio

from .. import telemetry
from .._exceptions import detached, one_exception, unwrap_single
from ..errors import (
    ConfigError,
    HealthCheckError,
    McpError,
    OpexError,
    RequestTimeoutError,
    ServerUnavailableError,
    TransportError,
    UsageError,
)
from ..protocol.session import ListChanged
from ..protocol.types import CallToolResult, Implementation, Tool
from ..supervision import ChildHandle, Supervisor
from ..telemetry import ChildStateChanged, ServerStateChanged
from ..transports.base import Transport, TransportFactory
from .call_meta import current_call_meta
from .client import McpClient, ProgressCallback, SessionRenewed
from .config import ServerConfig, parse_server, server_id
from .naming import assign_names
from .options import (
    FINAL_STATES,
    HealthCheck,
    RegisteredTool,
    ServerOptions,
    ServerState,
    ServerStatus,
    transport_factory,
)

__all__ = [
    "HealthCheck",
    "RegisteredTool",
    "ServerOptions",
    "ServerState",
    "ServerStatus",
    "SessionManager",
    "transport_factory",
]

logger = logging.getLogger("opex_trio.mcp.manager")


class _Server:
    """What the manager keeps for one server."""

    def __init__(
        self, server_id: str, config: ServerConfig | TransportFactory, options: ServerOptions
    ) -> None:
        self.id = server_id
        self.config = config
        self.options = options
        self.factory = config if callable(config) else transport_factory(config, server_id)
        self.state: ServerState = "starting"
        self.client: McpClient | None = None
        self.tools: tuple[Tool, ...] = ()
        self.protocol_version: str | None = None
        self.server_info: Implementation | None = None
        self.last_error: BaseException | None = None
        self.handle: ChildHandle | None = None
        self.changed = trio.Event()
        self.loading = trio.Lock()

    @property
    def restarts(self) -> int:
        return self.handle.restarts if self.handle is not None else 0

    def learn(self, client: McpClient) -> None:
        """Keep what the client's latest handshake said about the server."""
        if client.protocol_version is not None:  # None while a handshake is under way
            self.protocol_version = client.protocol_version
            self.server_info = client.server_info

    def ready_client(self) -> McpClient | None:
        client = self.client
        # Not ``connected``: while the actor renews a session the server forgot,
        # the state stays "ready" and the client itself holds calls until the
        # new session is open; waiting here for a state change would wait forever.
        if self.state in ("ready", "unhealthy") and client is not None and client.available:
            return client
        return None


class SessionManager:
    """Runs many MCP servers under supervision and keeps one registry of their tools.

    ``options`` are the defaults for every server (each :meth:`add_server`
    may give its own). Use it as ``async with SessionManager() as mcp:``;
    leaving the block stops every server and leaves no process behind. Calls
    that start, stop or use servers raise :class:`~opex_trio.errors.UsageError`
    outside that block (the snapshots, :meth:`servers`, :meth:`status` and
    :meth:`tools`, work at any time).
    """

    def __init__(self, *, options: ServerOptions | None = None, name: str = "mcp") -> None:
        self.options = options or ServerOptions()
        self.name = name
        self._servers: dict[str, _Server] = {}
        self._supervisor: Supervisor | None = None
        self._streams: list[
            tuple[trio.MemorySendChannel[ServerStateChanged], trio.MemoryReceiveChannel[Any]]
        ] = []
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
            for send, drop in self._streams:
                send.close()
                drop.close()
            self._streams.clear()

    def __repr__(self) -> str:
        return f"SessionManager(name={self.name!r})"

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
        entry = _Server(sid, parsed, options or self.options)
        self._servers[sid] = entry
        self._emit(entry, "starting", None)
        entry.handle = supervisor.start_soon(
            self._serve, entry, name=sid, policy=entry.options.restart
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
        )

    def client(self, server_id: str) -> McpClient:
        """The client of a ready server, for resources, prompts and the rest.

        While it renews a session the server forgot, its calls wait for the new one.
        """
        self._sup()
        entry = self._entry(server_id)
        client = entry.ready_client()
        if client is None:
            raise self._unavailable(entry)
        return client

    def events(self, max_buffer: int = 256) -> trio.MemoryReceiveChannel[ServerStateChanged]:
        """Subscribe to server state changes from now on.

        The manager never waits for a reader: when ``max_buffer`` events wait,
        the oldest is dropped. The channel ends when the manager closes; close
        it to unsubscribe (the manager forgets it and writes to it no more).
        """
        send, receive = trio.open_memory_channel[ServerStateChanged](max_buffer)
        if self._closed:
            send.close()
            return receive
        self._drop_closed_streams()
        # A receive clone of our own lets us drop the oldest event when full.
        self._streams.append((send, receive.clone()))
        return receive

    def _drop_closed_streams(self) -> None:
        live = []
        for send, drop in self._streams:
            if drop.statistics().open_receive_channels <= 1:
                # The subscriber closed its end; only our clone is left.
                send.close()
                drop.close()
            else:
                live.append((send, drop))
        self._streams = live

    async def wait_ready(self, *server_ids: str, timeout: float | None = None) -> None:
        """Wait until the servers (all of them when none is named) are ready.

        Raises :class:`ServerUnavailableError` for a server that failed, was
        stopped, or is not ready when ``timeout`` seconds have passed.
        """
        self._sup()
        ids = server_ids or tuple(self._servers)
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        for sid in ids:
            await self._ready_client(self._entry(sid), deadline)

    # -- calls

    async def call_tool(
        self,
        server_id: str,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | Literal["default"] | None = "default",
        progress: ProgressCallback | None = None,
    ) -> CallToolResult:
        """Call a tool of one server by its own name.

        Waits for the server within the call's deadline (``timeout``, by
        default the server's ``call_timeout``); see the module docstring for
        what happens when the server dies during the call.
        """
        self._sup()
        entry = self._entry(server_id)
        seconds = entry.options.call_timeout if timeout == "default" else timeout
        deadline = math.inf if seconds is None else trio.current_time() + seconds
        resent = 0
        while True:
            client = await self._ready_client(entry, deadline)
            remaining = None if deadline == math.inf else max(deadline - trio.current_time(), 0)
            try:
                return await client.call_tool(
                    name, arguments, timeout=remaining, progress=progress, meta=current_call_meta()
                )
            except RequestTimeoutError:
                raise
            except TransportError:
                if not self._may_resend(entry, name) or resent >= 2:
                    raise
                resent += 1
                logger.info(
                    "MCP server %r died during a call of %r; sending it again (the tool is "
                    "idempotent)",
                    entry.id,
                    name,
                )

    async def call(
        self,
        registry_name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | Literal["default"] | None = "default",
        progress: ProgressCallback | None = None,
    ) -> CallToolResult:
        """Call a tool by its registry name."""
        self._sup()
        registered = self._registry.get(registry_name)
        if registered is None:
            raise ConfigError(f"no tool named {registry_name!r} in the registry")
        return await self.call_tool(
            registered.server, registered.tool.name, arguments, timeout=timeout, progress=progress
        )

    def tools(self, *server_ids: str) -> dict[str, RegisteredTool]:
        """The registry: every tool (of the named servers, or all) under its registry name."""
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

    async def refresh_tools(self, server_id: str) -> None:
        """Reload a ready server's tools now."""
        client = self.client(server_id)
        await self._load_tools(self._entry(server_id), client)

    # -- internals

    def _entry(self, server_id: str) -> _Server:
        entry = self._servers.get(server_id)
        if entry is None:
            known = ", ".join(map(repr, self._servers)) or "none"
            raise ServerUnavailableError(
                f"no MCP server {server_id!r} (servers: {known})",
                server=server_id,
                state="unknown",
            )
        return entry

    def _unavailable(self, entry: _Server) -> ServerUnavailableError:
        why = f": {entry.last_error}" if entry.last_error else ""
        return ServerUnavailableError(
            f"MCP server {entry.id!r} is not available ({entry.state}){why}",
            server=entry.id,
            state=entry.state,
            last_error=entry.last_error,
        )

    async def _ready_client(self, entry: _Server, deadline: float) -> McpClient:
        with trio.move_on_at(deadline):
            while True:
                client = entry.ready_client()
                if client is not None:
                    return client
                if entry.state in FINAL_STATES:
                    raise self._unavailable(entry)
                await entry.changed.wait()
        raise self._unavailable(entry)

    def _may_resend(self, entry: _Server, name: str) -> bool:
        if not entry.options.resend_idempotent:
            return False
        tool = next((t for t in entry.tools if t.name == name), None)
        return tool is not None and tool.idempotent

    async def _serve(self, entry: _Server, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        # The supervisor keeps a failure until the next one; raised as it came,
        # its frames would keep the dead client and its transport alive.
        try:
            await self._serve_client(entry, task_status=task_status)
        except Exception as exc:  # noqa: BLE001 - raised again below, without its frames
            error = detached(exc)
        else:
            return
        raise error

    async def _serve_client(self, entry: _Server, *, task_status: Any) -> None:
        client = McpClient(entry.factory, name=entry.id, options=entry.options.client)
        entry.client = client
        with unwrap_single():
            async with trio.open_nursery() as nursery:
                await nursery.start(self._run_client, client, nursery.cancel_scope)
                entry.learn(client)
                # Listening before the first load: a change announced meanwhile is not lost.
                await nursery.start(self._listen, entry, client)
                await self._load_tools(entry, client)
                self._set_state(entry, "ready")
                if entry.options.health is not None:
                    nursery.start_soon(self._check_health, entry, client, entry.options.health)

    @staticmethod
    async def _run_client(
        client: McpClient, scope: trio.CancelScope, *, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        # The listener and the health check live only as long as the connection.
        await client.run(task_status=task_status)
        scope.cancel()

    async def _load_tools(self, entry: _Server, client: McpClient) -> None:
        # One load at a time per server, so an older answer never replaces a newer one.
        async with entry.loading:
            if client.capabilities.tools is None:
                tools: list[Tool] = []
            else:
                tools = await client.list_tools()
            entry.tools = tuple(t for t in tools if entry.options.allows(t.name))
            self._rebuild_registry()

    async def _listen(
        self, entry: _Server, client: McpClient, *, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with client.subscribe() as notices:
            task_status.started()
            async for notice in notices:
                if isinstance(notice, SessionRenewed):
                    entry.learn(client)
                elif not (isinstance(notice, ListChanged) and notice.kind == "tools"):
                    continue
                try:
                    await self._load_tools(entry, client)
                except (OpexError, McpError) as exc:
                    logger.warning("reloading the tools of %r failed: %s", entry.id, exc)

    async def _check_health(self, entry: _Server, client: McpClient, check: HealthCheck) -> None:
        failures = 0
        while True:
            await trio.sleep(check.interval)
            healthy = await self._probe(client, check)
            if healthy:
                failures = 0
                if entry.state == "unhealthy":
                    self._set_state(entry, "ready")
                continue
            failures += 1
            error = HealthCheckError(
                f"MCP server {entry.id!r} failed {failures} health check(s) in a row "
                f"(no answer within {check.timeout:g} s)",
                server=entry.id,
                failures=failures,
            )
            entry.last_error = error
            self._set_state(entry, "unhealthy", error)
            if failures >= check.failures:
                client.abort(error)
                return

    async def _probe(self, client: McpClient, check: HealthCheck) -> bool:
        transport = client.transport
        if isinstance(transport, Transport) and getattr(transport, "returncode", None) is not None:
            return False
        features = client.features
        with trio.move_on_after(check.timeout):
            try:
                if features is None or features.ping:
                    await client.ping(timeout=None)
                else:
                    await client.request("tools/list", timeout=None)
            except McpError:
                pass  # an error answer is still an answer
            except OpexError:
                return False
            return True
        return False

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
        self, entry: _Server, state: ServerState, error: BaseException | None = None
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
        entry: _Server,
        state: ServerState,
        previous: str | None,
        error: BaseException | None = None,
    ) -> None:
        event = ServerStateChanged(
            server=entry.id, state=state, previous=previous, error=error, restarts=entry.restarts
        )
        if telemetry.enabled():
            telemetry.emit(event)
        self._drop_closed_streams()
        for send, drop in self._streams:
            try:
                send.send_nowait(event)
            except trio.WouldBlock:
                drop.receive_nowait()
                send.send_nowait(event)

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
