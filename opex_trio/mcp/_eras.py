"""What the actor knows of the protocol eras: the session to make, how it opens, what to hear.

The rules themselves are the sans-IO session's (:mod:`opex_trio.protocol.session`);
this module turns the client's options into its arguments, times the era
probe, and remembers what detection found.

Memory of eras
--------------
An era is a property of the server, not of one request, so detection runs
once and its answer is kept (:data:`ERAS`): per transport factory (the
session manager keeps one per server across restarts, so a restarted stdio
server is not probed again) and per HTTP origin (so a second client of the
same remote server skips the probe). Only detected eras are kept; an era the
user pinned is never looked up. When a session opened in a remembered era
fails to open, the memory is wrong (the server was replaced), so it is
forgotten and the era is detected afresh on the same connection.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import trio

from ..errors import OpexError, RequestTimeoutError
from ..protocol.modern import SubscriptionFilter
from ..protocol.session import ClientSession
from ..protocol.tasks import TASK_RESULT_TYPE, TASKS_EXTENSION
from ..protocol.versions import Era
from ._options import ClientOptions
from ._reply import Reply

if TYPE_CHECKING:
    from ._actor import Actor

__all__ = ["ERAS", "EraMemory", "listen_filter", "new_session", "open_session"]

logger = logging.getLogger("opex_trio.mcp")


def new_session(options: ClientOptions, known: Era | None) -> ClientSession:
    """A session for ``options``; an era ``known`` from an earlier session of the server wins."""
    return ClientSession(
        client_info=options.client_info,
        capabilities=options.capabilities(),
        protocol_version=options.protocol_version,
        era=known if known is not None else options.era,
        modern_version=options.modern_version,
        # Tool calls follow task handles to their end (see mcp/_tasks.py).
        result_types=frozenset({TASK_RESULT_TYPE}),
        extensions={TASKS_EXTENSION: {}},
    )


def listen_filter(
    session: ClientSession, resources: tuple[str, ...] = ()
) -> SubscriptionFilter | None:
    """What an open modern session should listen for.

    The list changes its server offers, and updates of ``resources`` (the
    URIs the client subscribed to) when the server offers subscriptions. The
    filter may be empty; ``None`` in the legacy era (changes come unasked, and
    resources are subscribed with ``resources/subscribe``) or before the
    session is open.
    """
    result = session.initialize_result
    if session.features is None or session.features.era is not Era.MODERN or result is None:
        return None
    caps = result.capabilities
    offered = caps.resources is not None and caps.resources.get("subscribe") is True
    return SubscriptionFilter(
        tools_list_changed=caps.list_changed("tools"),
        prompts_list_changed=caps.list_changed("prompts"),
        resources_list_changed=caps.list_changed("resources"),
        resource_subscriptions=resources if offered else (),
    )


def origin_of(transport: Any) -> str | None:
    """The origin (``scheme://host:port``) of a transport that has a URL, else ``None``."""
    url = getattr(getattr(transport, "params", None), "url", None)
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.hostname}:{port if port is not None else ''}".lower()


class EraMemory:
    """Eras found by detection, per transport factory and per origin (at most ``size`` origins).

    Factories are held weakly: a factory's entry goes when nothing else holds
    the factory. Origins are forgotten least recently used first.
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._by_origin: OrderedDict[str, Era] = OrderedDict()
        self._by_factory: weakref.WeakKeyDictionary[Any, Era] = weakref.WeakKeyDictionary()

    def recall(self, factory: Any, transport: Any) -> Era | None:
        """The era remembered for this factory, or else for the transport's origin."""
        try:
            era = self._by_factory.get(factory)
        except TypeError:  # not weakly referenceable: never remembered
            era = None
        if era is not None:
            return era
        origin = origin_of(transport)
        if origin is None or origin not in self._by_origin:
            return None
        self._by_origin.move_to_end(origin)
        return self._by_origin[origin]

    def remember(self, factory: Any, transport: Any, era: Era) -> None:
        """Keep what detection found for this factory and origin."""
        with contextlib.suppress(TypeError):  # not weakly referenceable: not kept
            self._by_factory[factory] = era
        origin = origin_of(transport)
        if origin is not None:
            self._by_origin[origin] = era
            self._by_origin.move_to_end(origin)
            while len(self._by_origin) > self.size:
                self._by_origin.popitem(last=False)

    def forget(self, factory: Any, transport: Any) -> None:
        """Drop what was kept for this factory and origin (the server was not what it was)."""
        with contextlib.suppress(TypeError):
            self._by_factory.pop(factory, None)
        origin = origin_of(transport)
        if origin is not None:
            self._by_origin.pop(origin, None)

    def clear(self) -> None:
        """Forget everything."""
        self._by_origin.clear()
        self._by_factory.clear()


ERAS = EraMemory()
"""The process's memory of detected eras."""


async def open_session(actor: Actor, *, first: bool) -> None:
    """Open the actor's session: its era pinned, remembered, or detected.

    ``first`` is the connection's first opening (a renewal keeps the era of
    the session it replaces). A session opened in a remembered era that fails
    to open is opened again with detection, and the memory is corrected.
    """
    options, transport = actor.options, actor.transport
    recalled = None
    if first and options.era is None:
        recalled = ERAS.recall(actor._factory, transport)
        if recalled is not None:
            actor._session = new_session(options, recalled)
    try:
        await _open(actor)
    except OpexError as exc:
        if recalled is None or actor.error is not None:
            raise
        logger.info(
            "MCP server %r did not open in the %s era it had before (%s); detecting it again",
            actor.name,
            recalled.value,
            exc,
        )
        ERAS.forget(actor._factory, transport)
        old = actor._session
        actor._session = new_session(options, None)
        actor._session.next_id = old.next_id
        actor._handshake = Reply()
        await _open(actor)
    actor._era = actor._session.era
    if options.era is None:
        ERAS.remember(actor._factory, transport, actor._era)


async def _open(actor: Actor) -> None:
    session, options = actor._session, actor.options
    session.open()
    actor._flush()
    with trio.move_on_after(options.init_timeout) as scope:
        if session.probing:
            with trio.move_on_after(options.probe_timeout):
                await actor._handshake.wait()
            if session.probing:
                # Silence is how some legacy servers answer an unknown request;
                # a DiscoverResult that comes later still counts.
                reason = f"no answer to server/discover within {options.probe_timeout:g} s"
                logger.info("MCP server %r speaks the legacy protocol: %s", actor.name, reason)
                session.fall_back_to_legacy(reason)
                actor._flush()
        await actor._handshake.wait()
    if scope.cancelled_caught:
        raise RequestTimeoutError(
            f"MCP server {actor.name!r} did not answer "
            f"{'server/discover' if session.era is Era.MODERN else 'initialize'} "
            f"within {options.init_timeout:g} s",
            method="initialize",
            timeout=options.init_timeout,
        )
    if actor._handshake.error is not None:
        raise actor._handshake.error
