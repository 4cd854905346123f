"""The client side of an MCP session, as a sans-IO state machine: the one place that knows the eras.

Theory of operation
-------------------
:class:`ClientSession` knows the rules and does no IO. The owner feeds it what
arrived (:meth:`ClientSession.receive_data`) and gets back events (see
:mod:`.events`); it asks it to build requests (:meth:`ClientSession.send_request`)
and gets back the message to write. Messages the session must send on its own
(the handshake, the answer to a ``ping``, an error for a request it cannot
serve, a cancellation, a request sent again) collect in an outbox that the
owner drains with :meth:`ClientSession.take_outgoing` after every call.

States::

    NEW --open()--> OPENING --opened--> READY --close()--> CLOSED
                       |                                     ^
                       +---------could not open--------------+

Eras (see :mod:`.versions`): the *legacy* era opens with ``initialize``
(:mod:`.legacy`); in the *modern* one every request carries its version,
capabilities and client identity in ``_meta`` (:mod:`.modern`). The owner
pins one, or passes ``era=None`` to detect it: ``server/discover`` goes first;
a ``DiscoverResult`` or a modern error code means modern (an
``UnsupportedProtocolVersionError`` makes it ask again with a version from the
server's list); any other error means legacy, and ``initialize`` follows
(:class:`~.events.EraDetected`). A silent server is the owner's to time: while
:attr:`ClientSession.probing` it bounds the wait, then calls
:meth:`ClientSession.fall_back_to_legacy`, as it does when an HTTP rejection
is legacy by :func:`era_of_http_rejection` (:meth:`ClientSession.opening_failed`).
A ``DiscoverResult`` that comes after the fallback still opens the session in
the modern era. How the session opens is :mod:`._opening`'s.

Once open, :attr:`ClientSession.features` decides what may be sent. In the
modern era a result without ``resultType`` is complete and an unknown one
fails its request; an ``input_required`` result becomes one
:class:`~.events.RequestReceived` per input asked for, under ids the session
makes up, answered with :meth:`ClientSession.respond` like a legacy server's
requests; with the last answer the request goes out again under a new id
carrying ``inputResponses`` and the ``requestState`` unchanged
(:class:`~.events.RequestResent`).

Every request the client sends stays in a pending table, keyed by id, with an
opaque ``context`` the owner attaches (the actor stores the caller's reply
slot there). A response pops its entry and carries the context back in the
event. A cancelled request leaves the table at once, so its late response
finds nothing and comes out as :class:`~.events.LateResponse`, which the owner
drops. A request sent again keeps its context, and cancelling it by the id the
owner knows cancels whatever id it now has.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from .._version import __version__
from ..errors import (
    McpError,
    ProtocolError,
    UnsupportedProtocolVersionError,
)
from . import _opening, _requests, jsonrpc
from ._opening import era_of_http_rejection, era_of_probe_error
from ._pending import PendingTable
from .events import (
    CancelledByServer,
    EraDetected,
    ErrorReceived,
    HandshakeComplete,
    HandshakeFailed,
    InvalidMessage,
    LateResponse,
    ListChanged,
    LogReceived,
    NotificationReceived,
    ProgressReceived,
    RequestHandled,
    RequestReceived,
    RequestResent,
    ResourceUpdated,
    ResponseReceived,
    SessionEvent,
    SubscriptionAcknowledged,
    SubscriptionEnded,
    notification_event,
)
from .jsonrpc import ErrorObject, ErrorResponse, Message, Notification, Request, RequestId, Response
from .legacy import LegacyOpening, ServerRequests
from .modern import (
    COMPLETE,
    ModernOpening,
    SubscriptionFilter,
    choose_version,
    shared_meta,
)
from .types import (
    Implementation,
    InitializeResult,
)
from .versions import (
    LATEST_LEGACY_VERSION,
    LATEST_VERSION,
    Era,
    Features,
    features,
    missing_method,
)

__all__ = [
    "CancelledByServer",
    "ClientSession",
    "EraDetected",
    "ErrorReceived",
    "HandshakeComplete",
    "HandshakeFailed",
    "InvalidMessage",
    "LateResponse",
    "ListChanged",
    "LogReceived",
    "NotificationReceived",
    "ProgressReceived",
    "RequestHandled",
    "RequestReceived",
    "RequestResent",
    "ResourceUpdated",
    "ResponseReceived",
    "SessionEvent",
    "SessionState",
    "SubscriptionAcknowledged",
    "SubscriptionEnded",
    "era_of_http_rejection",
    "era_of_probe_error",
]


class SessionState(enum.Enum):
    """Where a :class:`ClientSession` is in its life."""

    NEW = "new"
    OPENING = "opening"
    READY = "ready"
    CLOSED = "closed"


# On Python 3.11 reading an enum member off its class goes through the
# metaclass's __getattr__ hook, several times slower than a global: the paths
# every message takes use these.
_READY = SessionState.READY
_CLOSED = SessionState.CLOSED


class ClientSession:
    """The sans-IO client side of one MCP session.

    ``capabilities`` is the client capabilities object to declare (declare
    ``roots``, ``sampling`` or ``elicitation`` only when something answers
    them). ``era`` pins the era, or is ``None`` to detect it
    (``server/discover`` first, ``initialize`` when the server is legacy).
    ``protocol_version`` is the version offered in ``initialize``;
    ``modern_version`` the one named in modern requests. ``log_level`` is the
    least severe log record modern requests ask for (``None``: the server's
    choice). ``result_types`` are the extra ``resultType`` values the
    extensions the owner declared add (a tasks extension's, say), and
    ``extensions`` the extensions its modern requests declare (legacy
    ``initialize`` has no place for them).
    """

    def __init__(
        self,
        *,
        client_info: Implementation | None = None,
        capabilities: Mapping[str, Any] | None = None,
        protocol_version: str = LATEST_LEGACY_VERSION,
        era: Era | None = Era.LEGACY,
        modern_version: str = LATEST_VERSION,
        log_level: str | None = None,
        result_types: frozenset[str] = frozenset(),
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        _requests.check_options(protocol_version, modern_version, era, log_level)
        self.client_info = client_info or Implementation(name="opex-trio", version=__version__)
        self.capabilities: Mapping[str, Any] = dict(capabilities or {})
        self.state = SessionState.NEW
        self.next_id = jsonrpc.IdAllocator()
        self.log_level = log_level
        self._result_types = frozenset({COMPLETE}) | result_types
        self._modern_capabilities: Mapping[str, Any] = self.capabilities
        if extensions:
            self._modern_capabilities = {**self.capabilities, "extensions": dict(extensions)}
        self._legacy_version = protocol_version
        self._modern_version = modern_version
        self._opening: LegacyOpening | ModernOpening = (
            LegacyOpening(protocol_version) if era is Era.LEGACY else ModernOpening(modern_version)
        )
        self._detecting = era is None
        self._opening_id: RequestId | None = None
        self._abandoned_probe: RequestId | None = None
        self._pending = PendingTable()
        self._server_requests = ServerRequests(self.capabilities)
        self._outbox: list[Message] = []
        self._rounds = self._pending.rounds
        self.subscriptions: dict[RequestId, SubscriptionFilter] = {}
        """Open ``subscriptions/listen`` streams, by request id, with what each asked for."""
        self.initialize_result: InitializeResult | None = None
        self.features: Features | None = None
        self._meta_cache: tuple[tuple[str, str | None], Mapping[str, Any]] | None = None

    # -- what the owner reads

    @property
    def era(self) -> Era:
        """The era the session opens in (while detecting: the era being tried)."""
        return self._opening.era

    @property
    def probing(self) -> bool:
        """Whether the ``server/discover`` probe of era detection awaits its answer.

        The owner bounds that wait and calls :meth:`fall_back_to_legacy` when
        it runs out.
        """
        return self._detecting and self.state is SessionState.OPENING

    @property
    def protocol_version(self) -> str | None:
        """The protocol version in use, once the session is open."""
        return self.features.version if self.features else None

    @property
    def pending_count(self) -> int:
        """How many requests await their response (or the input their server asked for)."""
        return len(self._pending)

    def take_outgoing(self) -> list[Message]:
        """Messages the session queued on its own; the owner must send them, in order."""
        out, self._outbox = self._outbox, []
        return out

    def queue(self, message: Message) -> None:
        """Put a message of the session's own in the outbox (for the era modules)."""
        self._outbox.append(message)

    def meta_for(self, version: str) -> Mapping[str, Any]:
        """The ``_meta`` of a modern request naming ``version`` (shared: do not change it).

        Built once per version and log level: every request carries the same
        members, and building them anew per request was most of what a
        modern call cost beyond a legacy one.
        """
        key = (version, self.log_level)
        cached = self._meta_cache
        if cached is None or cached[0] != key:
            meta = shared_meta(version, self._modern_capabilities, self.client_info, self.log_level)
            self._meta_cache = cached = (key, meta)
        return cached[1]

    # -- what the owner asks for

    def open(self) -> None:
        """Start opening the session; its first message is in the outbox."""
        if self.state is not SessionState.NEW:
            raise ProtocolError(f"cannot open a session that is {self.state.value}")
        self.state = SessionState.OPENING
        _opening.send_opening(self)

    def fall_back_to_legacy(self, reason: str) -> EraDetected:
        """Give up the ``server/discover`` probe and open with ``initialize``.

        For the owner, when the probe got no answer within its bound, or when
        the HTTP transport saw a rejection :func:`era_of_http_rejection` calls
        legacy. A late ``DiscoverResult`` to the probe still opens the session
        in the modern era (see :mod:`._opening`).
        """
        if not self.probing:
            raise ProtocolError("fall_back_to_legacy is only possible while probing the era")
        return _opening.fall_back(self, reason)

    def opening_failed(self, request_id: RequestId, error: Exception) -> list[SessionEvent] | None:
        """The transport failed to deliver request ``request_id`` (an HTTP status, say).

        ``None`` when it is not the opening request. While probing the era
        this means legacy: the returned :class:`EraDetected` comes with
        ``initialize`` in the outbox. Otherwise the session could not open
        (:class:`HandshakeFailed`).
        """
        return _opening.opening_failed(self, request_id, error)

    def send_request(
        self, method: str, params: Mapping[str, Any] | None = None, *, context: Any = None
    ) -> Request:
        """Build a request, record it as pending with ``context``, and return it to send."""
        self._check_may_send(method)
        return _requests.new_request(self, method, params, context)

    def listen(self, wanted: SubscriptionFilter, *, context: Any = None) -> Request:
        """Open a ``subscriptions/listen`` stream (modern era); return the request to send.

        Its notifications come out as the same events as legacy notifications,
        carrying the request's id; cancel the stream with :meth:`cancel`.
        """
        if self.features is None or self.features.era is not Era.MODERN:
            raise ProtocolError(
                "subscriptions/listen exists only in the modern era; legacy sessions get "
                "list changes unasked and subscribe to resources with resources/subscribe"
            )
        request = self.send_request(
            "subscriptions/listen", {"notifications": wanted.to_dict()}, context=context
        )
        self.subscriptions[request.id] = wanted
        return request

    def set_log_level(self, level: str) -> Request | None:
        """Ask for log records of ``level`` and above.

        Legacy era: returns the ``logging/setLevel`` request to send. Modern
        era: every later request carries the level; nothing to send.
        """
        _requests.check_log_level(level)
        if self.features is not None and self.features.era is Era.MODERN:
            self.log_level = level
            return None
        return self.send_request("logging/setLevel", {"level": level})

    def send_notification(
        self, method: str, params: Mapping[str, Any] | None = None
    ) -> Notification:
        """Build a notification to send (``notifications/roots/list_changed``, ...)."""
        if self.state is not SessionState.READY:
            raise ProtocolError(f"cannot send {method} while the session is {self.state.value}")
        return Notification(method, params)

    def cancel(
        self, request_id: RequestId, reason: str | None = None, *, notify: bool = True
    ) -> Any:
        """Forget a pending request and queue ``notifications/cancelled`` for it.

        Returns the request's context (``None`` when it was not pending). A late
        response to it will come out as :class:`LateResponse`. With
        ``notify=False`` (the request never left, or was answered after all)
        nothing is queued. The opening request is never cancelled on the wire,
        as the specification demands of ``initialize``. ``request_id`` may be
        the id a request had before it was sent again.
        """
        waiting = self._rounds.drop(request_id)
        if waiting is not None:
            # Its server already answered; nothing is in flight to cancel.
            return waiting.context
        taken = self._pending.take(request_id)
        if taken is None:
            return None
        current, pending = taken
        self.subscriptions.pop(current, None)
        if notify and current != self._opening_id and self.state is not SessionState.CLOSED:
            self._outbox.append(_requests.cancellation(current, reason))
        return pending[1]

    def respond(self, request_id: RequestId, result: Mapping[str, Any]) -> list[SessionEvent]:
        """Queue the answer to a :class:`RequestReceived`.

        For an input a modern server asked for, the answer is kept until every
        input of the request is answered; then the request is sent again and
        the :class:`RequestResent` event is returned.
        """
        if request_id in self._rounds:
            waiting = self._rounds.answer(request_id, result)
            return [] if waiting is None else [_requests.resend_round(self, waiting)]
        if self._server_requests.close(request_id) and self.state is not SessionState.CLOSED:
            self._outbox.append(Response(request_id, result))
        return []

    def respond_error(
        self, request_id: RequestId, code: int, message: str, data: Any = None
    ) -> list[SessionEvent]:
        """Queue an error answer to a :class:`RequestReceived`.

        For an input a modern server asked for there is no error to send: the
        request that needed it fails, and its :class:`ErrorReceived` is returned.
        """
        if request_id in self._rounds:
            return _requests.fail_round(self, request_id, code, message)
        if self._server_requests.close(request_id) and self.state is not SessionState.CLOSED:
            self._outbox.append(ErrorResponse(request_id, ErrorObject(code, message, data)))
        return []

    def close(self) -> list[tuple[RequestId, str, Any]]:
        """Close the session; return the pending requests (id, method, context) it abandons."""
        self.state = SessionState.CLOSED
        abandoned = self._pending.abandon()
        self._server_requests.clear()
        self.subscriptions.clear()
        return abandoned

    # -- what arrived

    def receive_data(self, data: bytes | str) -> list[SessionEvent]:
        """Parse one JSON text from the server and return what it means."""
        allow_batch = bool(self.features and self.features.batching)
        try:
            messages = jsonrpc.decode(data, allow_batch=allow_batch)
        except ProtocolError as exc:
            return [self._invalid(exc)]
        events: list[SessionEvent] = []
        for message in messages:
            if isinstance(message, ProtocolError):
                events.append(self._invalid(message))
            else:
                events.extend(self.receive_message(message))
        return events

    def receive_message(self, message: Message) -> list[SessionEvent]:
        """Handle one parsed message and return what it means (usually one event)."""
        if self.state is _CLOSED:
            return [LateResponse(getattr(message, "id", None))]
        if isinstance(message, Response):
            return self._on_response(message)
        if isinstance(message, ErrorResponse):
            return [self._on_error(message)]
        if isinstance(message, Request):
            return [self._on_request(message)]
        return [self._on_notification(message)]

    # -- internals: sending

    def _check_may_send(self, method: str) -> None:
        if self.state is _READY:
            assert self.features is not None
            missing = missing_method(self.features, method)
            if missing:
                raise ProtocolError(missing)
            return
        if self.state is SessionState.OPENING and method == "ping":
            return
        raise ProtocolError(
            f"cannot send {method} while the session is {self.state.value}"
            + (" (only ping may be sent before the handshake ends)" if method != "ping" else "")
        )

    # -- internals: receiving

    def _invalid(self, exc: ProtocolError) -> SessionEvent:
        rid = exc.request_id
        if rid is not None:
            pending = self._pending.pop(rid)
            if pending is not None:
                # A malformed answer to one of our requests fails that request
                # now instead of leaving it to time out.
                if rid == self._opening_id:
                    self.close()
                    return HandshakeFailed(exc)
                return ErrorReceived(
                    self._pending.finish(rid, pending), pending[0], exc, pending[1]
                )
        return InvalidMessage(exc)

    def _on_response(self, message: Response) -> list[SessionEvent]:
        rid = message.id
        pending = self._pending.pop(rid)
        if pending is None:
            if rid == self._abandoned_probe and self.state is SessionState.OPENING:
                return _opening.late_probe_answer(self, rid, message.result)
            return [LateResponse(rid)]
        if rid == self._opening_id:
            return _opening.on_result(self, message.result)
        if pending[2] is None:  # legacy era: results are what they are
            return [ResponseReceived(rid, pending[0], message.result, pending[1])]
        result = message.result
        if result.get("resultType", COMPLETE) == COMPLETE and pending[0] != "subscriptions/listen":
            # The modern common case, kept short: every modern call passes here.
            return [
                ResponseReceived(self._pending.finish(rid, pending), pending[0], result, pending[1])
            ]
        return _requests.modern_response(self, rid, pending, result)

    def _on_error(self, message: ErrorResponse) -> SessionEvent:
        rid = message.id
        pending = self._pending.pop(rid) if rid is not None else None
        if pending is None or rid is None:
            return LateResponse(rid)
        err = message.error
        error = McpError.received(err.code, err.message, err.data, method=pending[0])
        if rid == self._opening_id:
            return _opening.on_error(self, rid, error)
        method, context, params, origin = pending
        if (
            isinstance(error, UnsupportedProtocolVersionError)
            and params is not None
            and not self._pending.is_version_retry(rid)
        ):
            version = choose_version(error.supported, self.protocol_version or LATEST_VERSION)
            if version is not None:
                # The server speaks a version we know after all: use it from now on.
                self.features = features(version)
                event = _requests.resend(
                    self, rid, method, params, context, origin or (rid, 0), str(error)
                )
                self._pending.mark_version_retry(event.new_id)
                return event
        self.subscriptions.pop(rid, None)
        return ErrorReceived(self._pending.finish(rid, pending), method, error, context)

    def _on_request(self, message: Request) -> SessionEvent:
        return self._server_requests.receive(message, self._outbox)

    def _on_notification(self, message: Notification) -> SessionEvent:
        event = notification_event(message)
        if isinstance(event, CancelledByServer):
            self._server_requests.close(event.params.request_id)
        return event
