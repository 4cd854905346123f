"""The one small interface every transport offers.

A transport moves JSON-RPC messages between the client and one server. It is
opened by an async context manager (so whatever tasks or processes it needs
live exactly as long as the ``async with``), and offers two operations:

* :meth:`Transport.send` writes messages, in order, in as few writes as the
  medium allows (the actor's writer hands over everything queued at once);
* :meth:`Transport.receive` returns the next JSON text from the server.

Failures are the same for every transport: :class:`~opex_trio.errors.TransportClosedError`
after the transport was closed by us, :class:`~opex_trio.errors.TransportBrokenError`
(or its :class:`~opex_trio.errors.ServerExitedError`) when the peer or the
network broke it, and :class:`~opex_trio.errors.MessageTooLargeError` for an
oversized message, after which the transport is still usable.

Transports where each request travels on its own (HTTP) can also fail one
request and keep the connection: :meth:`Transport.receive` then raises
:class:`RequestFailure`, which names the request and carries the typed error
its caller gets. Transports with sessions the server can forget (Streamable
HTTP) raise :class:`~opex_trio.errors.SessionExpiredError` and offer
:meth:`Transport.reset_session`, after which a new handshake may start. When
the server refused one request for the forgotten session, that request's
:class:`RequestFailure` carries the :class:`~opex_trio.errors.SessionExpiredError`
instead: the request never ran, so it may be sent again in the new session.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

import attrs

from ..errors import OpexError, TransportBrokenError
from ..protocol.jsonrpc import Message, RequestId, encode

__all__ = ["EXECUTION_ID_META", "Outgoing", "RequestFailure", "Transport", "TransportFactory"]

EXECUTION_ID_META = "opex-trio/idempotency-key"
"""The ``_meta`` key of a ``tools/call`` that names this one call for the server.

A caller that may send the same call twice (a durable run retrying a step) puts
one key in it per logical call; the server can then recognise a repeat. A
transport that sends an execution id header (HTTP) sends this key there instead
of its configured ``execution_id``.
"""


@attrs.frozen(slots=True)
class Outgoing:
    """A message on its way out, with its JSON encoding.

    The sender encodes (and so validates) a message once, in its own task;
    transports write ``data`` and look at ``message`` when they must know what
    they send (HTTP treats requests and notifications differently).
    """

    message: Message
    data: bytes

    @classmethod
    def of(cls, message: Message) -> Outgoing:
        """Encode ``message``."""
        return cls(message, encode(message))


class RequestFailure(Exception):
    """One request failed in the transport; the connection itself goes on.

    Raised by :meth:`Transport.receive` of transports that carry each request
    on its own (an HTTP POST answered with an error status, a response stream
    that ended without the answer). ``error`` is the typed error the caller of
    that request gets; no other request is affected.
    """

    def __init__(self, request_id: RequestId, error: OpexError) -> None:
        super().__init__(request_id, error)
        self.request_id = request_id
        self.error = error


class Transport(abc.ABC):
    """A connection to one MCP server that carries JSON-RPC messages."""

    name: str = "server"
    """A short label for logs and error messages (the server's name)."""

    @abc.abstractmethod
    async def send(self, messages: Sequence[Outgoing]) -> None:
        """Send ``messages`` in order.

        Raises :class:`~opex_trio.errors.TransportClosedError` or
        :class:`~opex_trio.errors.TransportBrokenError`.
        """

    @abc.abstractmethod
    async def receive(self) -> bytes | str:
        """Wait for the next JSON text from the server (one message or one batch).

        Raises :class:`~opex_trio.errors.TransportBrokenError` when the server
        went away, :class:`~opex_trio.errors.TransportClosedError` after the
        transport was closed, and :class:`~opex_trio.errors.MessageTooLargeError`
        for one oversized message (the next call goes on with the following one).
        Transports that can fail a single request raise :class:`RequestFailure`.
        """

    def failure_details(self) -> str:
        """Extra words for error messages about this connection (exit status, stderr tail)."""
        return ""

    @property
    def can_reset_session(self) -> bool:
        """Whether :meth:`reset_session` can start a new session on this connection."""
        return False

    async def reset_session(self) -> None:
        """Forget the current session (the server expired it) so a new handshake can start.

        Messages of the old session still on their way are dropped; the next
        message sent must be the new ``initialize`` request.
        """
        raise TransportBrokenError(f"the connection to {self.name} cannot start a new session")


TransportFactory = Callable[[], AbstractAsyncContextManager[Transport]]
"""Opens a fresh connection each time it is called; a supervisor reconnects with it."""
