"""One server's life under the session manager: connect, load its lists, listen, check health.

The supervisor runs :meth:`ServerRunner.serve` as the server's child task;
it returns or raises when the connection ends, and the supervisor decides
whether to start it again.

Caching the tool list
---------------------
A legacy server gives no caching hints: its tools are listed after each
connect and again whenever it says they changed. A modern server's
``tools/list`` result carries ``ttlMs``: the list is fresh for that long
after it arrived (over several pages, the shortest counts), and a change
notice makes it stale at once. Stale lists are listed again lazily, when the
registry is used (:meth:`ServerRunner.note_use`, called by
:meth:`~opex_trio.mcp.manager.SessionManager.tools`, reloads in the
background and the use gets the list it had; :meth:`ServerRunner.refresh_stale`
reloads and waits), never on a timer, as the specification advises. A
``ttlMs`` of 0 (or none on a modern page) means no caching: every use
reloads, one reload at a time. When a reload fails the stale list is kept.

``cacheScope`` says who may share a cached result: ``"private"`` only within
the authorization context that fetched it, ``"public"`` anyone. The registry
is one manager's view of servers it connected to with their own
configuration (their own credentials), and it is never shared with another
manager or another authorization context, so both scopes are cached alike,
and a result without a scope is treated as private.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import trio

from .._exceptions import detached, unwrap_single
from ..errors import HealthCheckError, McpError, OpexError, TransportError
from ..protocol.dialects import unsupported_dialect
from ..protocol.modern import CacheHints
from ..protocol.session import ListChanged, ResourceUpdated
from ..protocol.types import Tool
from ..transports.base import Transport
from ._listings import load_listings, load_listings_locked
from ._server import ServerEntry
from .client import McpClient, RootsProvider, SessionRenewed
from .options import HealthCheck, ServerState

__all__ = ["ServerRunner"]

logger = logging.getLogger("opex_trio.mcp.manager")

SetState = Callable[[ServerEntry, ServerState, BaseException | None], None]


class ServerRunner:
    """Runs the servers of one manager, telling it of state and tool changes.

    ``set_state`` records a server's new state, ``tools_changed`` rebuilds
    the registry after a server's tools were loaded, ``roots`` gives the
    manager's current roots for a server whose own options give none, and
    ``resource_updated`` is told of every ``notifications/resources/updated``.
    """

    def __init__(
        self,
        *,
        set_state: SetState,
        tools_changed: Callable[[], None],
        roots: Callable[[], RootsProvider | None],
        resource_updated: Callable[[ServerEntry, str], None] = lambda entry, uri: None,
    ) -> None:
        self._set_state = set_state
        self._tools_changed = tools_changed
        self._roots = roots
        self._resource_updated = resource_updated

    async def serve(
        self, entry: ServerEntry, *, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run one connection to the server until it ends (the supervised child task)."""
        # The supervisor keeps a failure until the next one; raised as it came,
        # its frames would keep the dead client and its transport alive.
        try:
            await self._serve_client(entry, task_status=task_status)
        except Exception as exc:  # noqa: BLE001 - raised again below, without its frames
            error = detached(exc)
        else:
            return
        raise error

    async def _serve_client(self, entry: ServerEntry, *, task_status: Any) -> None:
        options = entry.options.client
        roots = self._roots()
        if options.roots is None and roots is not None:
            options = attrs.evolve(options, roots=roots)
        client = McpClient(entry.factory, name=entry.id, options=options)
        if entry.client is not None:
            # What the program subscribed to survives the restart (and only
            # that: the old client, and its transport, must not be kept alive).
            client.restore_subscriptions(entry.client.subscribed_resources)
        entry.client = client
        with unwrap_single():
            async with trio.open_nursery() as nursery:
                await nursery.start(_run_client, client, nursery.cancel_scope)
                entry.learn(client)
                # Listening before the first load: a change announced meanwhile is not lost.
                await nursery.start(self._listen, entry, client)
                await self.load_tools(entry, client)
                # Listed in the background: a server slow to list its resources or
                # prompts does not hold up its tools. Its lock is taken first, so
                # a refresh asked for once the server is ready comes after it.
                await nursery.start(_list_in_background, entry, client)
                nursery.start_soon(self._reload_when_stale, entry, client)
                self._set_state(entry, "ready", None)
                if entry.options.health is not None:
                    nursery.start_soon(self._check_health, entry, client, entry.options.health)

    async def load_tools(self, entry: ServerEntry, client: McpClient) -> None:
        """Load the server's tools, through its filters, into the registry."""
        # One load at a time per server, so an older answer never replaces a newer one.
        async with entry.loading:
            hints: CacheHints | None = None
            if client.capabilities.tools is None:
                tools: list[Tool] = []
            else:
                tools, hints = await client.list_tools_with_hints()
            entry.tools_stale_at = None if hints is None else trio.current_time() + hints.seconds
            allowed = [t for t in tools if entry.options.allows(t.name)]
            left_out = {}
            for tool in allowed:
                reason = unsupported_dialect(tool.input_schema)
                if reason is None:
                    continue
                left_out[tool.name] = reason
                if entry.left_out.get(tool.name) != reason:
                    logger.warning(
                        "MCP server %r: tool %r is not offered: %s", entry.id, tool.name, reason
                    )
            entry.left_out = left_out
            entry.tools = tuple(t for t in allowed if t.name not in left_out)
            self._tools_changed()

    def note_use(self, entries: Iterable[ServerEntry]) -> None:
        """The registry is being used: reload, in the background, every stale tool list."""
        try:
            now = trio.current_time()
        except RuntimeError:  # a snapshot taken outside trio
            return
        for entry in entries:
            if entry.tools_stale(now):
                entry.stale.set()

    async def refresh_stale(self, entry: ServerEntry) -> None:
        """Reload the server's tool list now if it is stale; keep the old one when that fails."""
        client = entry.ready_client()
        if client is None or not entry.tools_stale(trio.current_time()):
            return
        try:
            await self.load_tools(entry, client)
        except (OpexError, McpError) as exc:
            logger.warning("reloading the stale tools of %r failed: %s", entry.id, exc)

    async def _reload_when_stale(self, entry: ServerEntry, client: McpClient) -> None:
        while True:
            await entry.stale.wait()
            entry.stale = trio.Event()
            if entry.client is client:
                await self.refresh_stale(entry)

    async def _listen(
        self, entry: ServerEntry, client: McpClient, *, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with client.subscribe() as notices:
            task_status.started()
            async for notice in notices:
                if isinstance(notice, ResourceUpdated):
                    self._resource_updated(entry, notice.uri)
                    continue
                if isinstance(notice, SessionRenewed):
                    entry.learn(client)
                    kinds: tuple[str, ...] = ("tools", "resources", "prompts")
                elif isinstance(notice, ListChanged):
                    kinds = (notice.kind,)
                else:
                    continue
                try:
                    if "tools" in kinds:
                        await self.load_tools(entry, client)
                    listings = tuple(k for k in ("resources", "prompts") if k in kinds)
                    if listings:
                        await load_listings(entry, client, listings)
                except (OpexError, McpError) as exc:
                    logger.warning("reloading the lists of %r failed: %s", entry.id, exc)

    async def _check_health(
        self, entry: ServerEntry, client: McpClient, check: HealthCheck
    ) -> None:
        failures = 0
        while True:
            await trio.sleep(check.interval)
            healthy = await _probe(client, check)
            if healthy:
                failures = 0
                if entry.state == "unhealthy":
                    self._set_state(entry, "ready", None)
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


async def _run_client(
    client: McpClient, scope: trio.CancelScope, *, task_status: Any = trio.TASK_STATUS_IGNORED
) -> None:
    # The listener and the health check live only as long as the connection.
    await client.run(task_status=task_status)
    scope.cancel()


async def _list_in_background(
    entry: ServerEntry, client: McpClient, *, task_status: Any = trio.TASK_STATUS_IGNORED
) -> None:
    # Logged as text: a record holding the error would keep its frames, and
    # the dead connection with them, alive.
    try:
        async with entry.listing:
            task_status.started()
            await load_listings_locked(entry, client)
    except TransportError as exc:
        # The connection's own failure, reported by its restart.
        logger.debug("listing the resources and prompts of %r failed: %s", entry.id, str(exc))
    except OpexError as exc:
        logger.warning("listing the resources and prompts of %r failed: %s", entry.id, str(exc))


async def _probe(client: McpClient, check: HealthCheck) -> bool:
    transport = client.transport
    if isinstance(transport, Transport) and getattr(transport, "returncode", None) is not None:
        return False
    with trio.move_on_after(check.timeout):
        try:
            # A modern server has no ping: the client sends server/discover instead.
            await client.ping(timeout=None)
        except McpError:
            pass  # an error answer is still an answer
        except OpexError:
            return False
        return True
    return False
