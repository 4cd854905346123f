"""The resources a client subscribed to, kept across sessions, and the streams that carry them.

Theory of operation
-------------------
:class:`Subscriptions` remembers the URIs a program subscribed to (and forgets
one it unsubscribes from), so that a new session subscribes to them again: a
session renewed after the server forgot the old one, and, through
:meth:`~opex_trio.mcp.client.McpClient.restore_subscriptions`, the client a
supervisor starts after a restart.

The eras subscribe differently. In the legacy era each URI is one
``resources/subscribe`` request; :meth:`Subscriptions.resubscribe` sends them
all again in a new session and waits for their answers, before calls made
meanwhile may go on. In the modern era there is no such request: the URIs are
part of the filter of the ``subscriptions/listen`` stream, with the list
changes the server offers. :meth:`Subscriptions.listen` opens a stream whose
filter is the current one and cancels the streams it replaces; the server's
acknowledgment completes the :class:`~opex_trio.mcp._reply.Reply` a
subscribing caller waits on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import trio

from .._exceptions import copy_error
from ..errors import RequestTimeoutError
from ..protocol.jsonrpc import Request, RequestId
from ..protocol.session import ClientSession, SubscriptionAcknowledged
from ..protocol.versions import Era
from ._eras import listen_filter
from ._reply import Reply

__all__ = ["Subscriptions"]

logger = logging.getLogger("opex_trio.mcp")


class Subscriptions:
    """What one client subscribed to, and the acknowledgments its listen streams wait for."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.uris: dict[str, None] = {}
        """The subscribed URIs, in the order they were subscribed (a dict as an ordered set)."""
        self._acks: dict[RequestId, Reply] = {}

    def remember(self, uris: tuple[str, ...] | list[str]) -> None:
        """Add ``uris`` to what is subscribed to."""
        for uri in uris:
            self.uris[uri] = None

    def listen(self, session: ClientSession, post: Callable[[Request], None]) -> Reply | None:
        """Open a modern listen stream for the current filter, replacing the open ones.

        ``post`` sends the new ``subscriptions/listen`` request (the session
        records it, but leaves the sending to its owner).

        Returns the reply its acknowledgment completes, or ``None`` when there
        is nothing to open: the legacy era, or a stream with this filter is
        open already (or the filter is empty, and the streams open were cancelled).
        """
        wanted = listen_filter(session, tuple(self.uris))
        if wanted is None or wanted in session.subscriptions.values():
            return None
        replaced = list(session.subscriptions)
        ack: Reply | None = None
        if not wanted.empty:
            ack = Reply()
            request = session.listen(wanted, context=ack)
            self._acks[request.id] = ack
            post(request)
            logger.debug("MCP server %r: listening for %s as %r", self.name, wanted, request.id)
        for rid in replaced:
            # Opened first, cancelled after: no update falls between the two streams.
            session.cancel(rid, "replaced by a stream with a new filter")
            old = self._acks.pop(rid, None)
            if old is not None:
                old.set({})
        return ack

    async def acknowledged(
        self, ack: Reply | None, method: str, seconds: float | None, deadline: float
    ) -> None:
        """Wait until ``deadline`` for ``ack`` (``seconds`` after the call began), or raise why not.

        :class:`~opex_trio.errors.RequestTimeoutError` when it does not come in
        time, the server's error when it refused the stream.
        """
        if ack is None:
            return
        with trio.move_on_at(deadline):
            await ack.wait()
        if not ack.done:
            assert seconds is not None
            raise RequestTimeoutError(
                f"MCP server {self.name!r} did not acknowledge the subscriptions/listen stream "
                f"for {method} within {seconds:g} s",
                method=method,
                timeout=seconds,
            )
        if ack.error is not None:
            raise copy_error(ack.error)

    def on_acknowledged(self, event: SubscriptionAcknowledged) -> None:
        """The server accepted a stream: wake whoever waits, and say what it left out."""
        ack = self._acks.pop(event.subscription_id, None)
        if ack is not None:
            ack.set({})
        refused = [u for u in self.uris if u not in event.granted.resource_subscriptions]
        if ack is not None and refused:
            logger.warning(
                "MCP server %r will not send updates of %s",
                self.name,
                ", ".join(map(repr, refused)),
            )

    def ended(self, subscription_id: RequestId, error: BaseException | None = None) -> None:
        """A stream ended (the server answered or refused it) before its acknowledgment."""
        ack = self._acks.pop(subscription_id, None)
        if ack is not None and error is not None:
            ack.fail(error)
        elif ack is not None:
            ack.set({})

    def abandon(self, error: BaseException) -> None:
        """The session is gone: fail every wait for an acknowledgment."""
        for ack in self._acks.values():
            ack.fail(error)
        self._acks.clear()

    async def restore(
        self,
        session: ClientSession,
        ack: Reply | None,
        post: Callable[[Request], None],
        seconds: float | None,
    ) -> None:
        """Subscribe again in a new session, and wait up to ``seconds`` for the server to agree.

        ``ack`` is the acknowledgment of the listen stream just opened (modern
        era). A refusal or silence is logged: the session opens regardless.
        """
        if not self.uris:
            return
        if ack is not None:
            with trio.move_on_after(math.inf if seconds is None else seconds):
                await ack.wait()
            if not ack.done or ack.error is not None:
                logger.warning(
                    "MCP server %r did not take the subscriptions to %s again: %s",
                    self.name,
                    ", ".join(map(repr, self.uris)),
                    ack.error or "no acknowledgment in time",
                )
            return
        sent = self.resubscribe_requests(session)
        for _uri, request, _reply in sent:
            post(request)
        if sent:
            await self.wait_restored(session, sent, seconds)

    def stale(self, session: ClientSession, subscription_id: RequestId | None) -> bool:
        """Whether a notification came on a listen stream that is no longer open."""
        return subscription_id is not None and subscription_id not in session.subscriptions

    def resubscribe_requests(self, session: ClientSession) -> list[tuple[str, Request, Reply]]:
        """The legacy ``resources/subscribe`` requests that restore every URI in a new session."""
        result = session.initialize_result
        if result is None or (session.features is not None and session.features.era is Era.MODERN):
            return []
        caps = result.capabilities.resources
        if caps is None or caps.get("subscribe") is not True:
            logger.warning(
                "MCP server %r no longer offers resource subscriptions; %s not restored",
                self.name,
                ", ".join(map(repr, self.uris)),
            )
            return []
        out = []
        for uri in self.uris:
            reply = Reply()
            request = session.send_request("resources/subscribe", {"uri": uri}, context=reply)
            out.append((uri, request, reply))
        return out

    async def wait_restored(
        self, session: ClientSession, sent: list[tuple[str, Request, Reply]], seconds: float | None
    ) -> None:
        """Wait up to ``seconds`` for the answers to :meth:`resubscribe_requests`; log failures."""
        with trio.move_on_after(math.inf if seconds is None else seconds):
            for _uri, _request, reply in sent:
                await reply.wait()
        for uri, request, reply in sent:
            if not reply.done:
                session.cancel(request.id, "the client's deadline passed")
                logger.warning(
                    "MCP server %r did not confirm the subscription to %r in time",
                    self.name,
                    uri,
                )
            elif reply.error is not None:
                logger.warning(
                    "MCP server %r refused the subscription to %r in the new session: %s",
                    self.name,
                    uri,
                    reply.error,
                )
