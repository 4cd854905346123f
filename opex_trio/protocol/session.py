"""The client side of an MCP session, as a sans-IO state machine.

Theory of operation
-------------------
:class:`ClientSession` knows the rules and does no IO. The owner feeds it what
arrived (:meth:`ClientSession.receive_data`) and gets back events; it asks it
to build requests (:meth:`ClientSession.send_request`) and gets back the
message to write. Messages the session must send on its own (the
``initialize`` request, ``notifications/initialized``, the answer to a
``ping``, an error for a request it cannot serve, a cancellation) collect in an
outbox that the owner drains with :meth:`ClientSession.take_outgoing` after
every call.

States::

    NEW --open()--> OPENING --handshake ok--> READY --close()--> CLOSED
                       |                                           ^
                       +---------handshake failed------------------+

How a session opens belongs to its era (see :mod:`.versions`), and only the
era's opening object knows it: the legacy era sends ``initialize`` offering
the newest legacy version, accepts a counter-offer it speaks, refuses one it
does not with :class:`~opex_trio.errors.VersionNegotiationError`, then sends
``notifications/initialized``. Until the handshake ends, only ``ping`` may be
sent. After it, :attr:`ClientSession.features` (the negotiated version's row)
decides what is allowed: batches, ``logging/setLevel``, ...

Every request the client sends stays in a pending table, keyed by id, with an
opaque ``context`` the owner attaches (the actor stores the caller's reply
slot there). A response pops its entry and carries the context back in the
event. A cancelled request leaves the table at once, so its late response
finds nothing and comes out as :class:`LateResponse`, which the owner drops.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from .._version import __version__
from ..errors import ConfigError, McpError, ProtocolError, VersionNegotiationError
from . import jsonrpc
from .jsonrpc import ErrorObject, ErrorResponse, Message, Notification, Request, RequestId, Response
from .types import (
    CancelledParams,
    Implementation,
    InitializeResult,
    LoggingMessageParams,
    ProgressParams,
    ResourceUpdatedParams,
)
from .versions import LATEST_LEGACY_VERSION, LEGACY_VERSIONS, Era, Features, features

__all__ = [
    "CancelledByServer",
    "ClientSession",
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
    "ResourceUpdated",
    "ResponseReceived",
    "SessionEvent",
    "SessionState",
]


class SessionState(enum.Enum):
    """Where a :class:`ClientSession` is in its life."""

    NEW = "new"
    OPENING = "opening"
    READY = "ready"
    CLOSED = "closed"


# -- events


@attrs.frozen
class SessionEvent:
    """Base class of what :meth:`ClientSession.receive_data` reports."""


@attrs.frozen
class HandshakeComplete(SessionEvent):
    """The session is open; ``result`` is the server's answer to the handshake."""

    result: InitializeResult
    features: Features


@attrs.frozen
class HandshakeFailed(SessionEvent):
    """The session could not open; it is now closed."""

    error: Exception


@attrs.frozen
class ResponseReceived(SessionEvent):
    """A result for a request we sent; ``context`` is what the owner attached to it."""

    request_id: RequestId
    method: str
    result: Mapping[str, Any]
    context: Any


@attrs.frozen
class ErrorReceived(SessionEvent):
    """A request we sent failed.

    ``error`` is an :class:`~opex_trio.errors.McpError` when the server answered
    with a JSON-RPC error, or a :class:`~opex_trio.errors.ProtocolError` when its
    answer was malformed.
    """

    request_id: RequestId
    method: str
    error: McpError | ProtocolError
    context: Any


@attrs.frozen
class LateResponse(SessionEvent):
    """A response to a request that is no longer pending (cancelled or unknown); dropped."""

    request_id: RequestId | None


@attrs.frozen
class RequestReceived(SessionEvent):
    """The server asks something the owner declared it can answer (roots, sampling, elicitation).

    Answer with :meth:`ClientSession.respond` or :meth:`ClientSession.respond_error`.
    """

    request: Request


@attrs.frozen
class RequestHandled(SessionEvent):
    """A server request the session answered itself.

    That is a ``ping``, or an error for a method the client declared no capability for.
    """

    request: Request


@attrs.frozen
class CancelledByServer(SessionEvent):
    """The server cancelled a request it had sent us; stop working on it, send no answer."""

    params: CancelledParams


@attrs.frozen
class ProgressReceived(SessionEvent):
    """``notifications/progress`` for a request we sent with a progress token."""

    params: ProgressParams


@attrs.frozen
class LogReceived(SessionEvent):
    """``notifications/message``: a log record from the server."""

    params: LoggingMessageParams


@attrs.frozen
class ListChanged(SessionEvent):
    """The server's list of tools, resources or prompts changed."""

    kind: Literal["tools", "resources", "prompts"]


@attrs.frozen
class ResourceUpdated(SessionEvent):
    """A resource the client subscribed to changed."""

    uri: str


@attrs.frozen
class NotificationReceived(SessionEvent):
    """Any other notification, passed on as it came."""

    notification: Notification


@attrs.frozen
class InvalidMessage(SessionEvent):
    """Something arrived that is not a valid message; it was skipped."""

    error: ProtocolError


_LIST_CHANGED: dict[str, Literal["tools", "resources", "prompts"]] = {
    "notifications/tools/list_changed": "tools",
    "notifications/resources/list_changed": "resources",
    "notifications/prompts/list_changed": "prompts",
}

# Requests the server may send that need an owner-supplied answer, with the
# client capability that must have been declared for each.
_HANDLED_REQUESTS = {
    "roots/list": "roots",
    "sampling/createMessage": "sampling",
    "elicitation/create": "elicitation",
}


class _LegacyOpening:
    """The legacy era's way to open: ``initialize`` then ``notifications/initialized``."""

    era = Era.LEGACY

    def __init__(self, offered: str) -> None:
        self.offered = offered

    def first_request(self, session: ClientSession) -> Request:
        return Request(
            session.next_id(),
            "initialize",
            {
                "protocolVersion": self.offered,
                "capabilities": dict(session.capabilities),
                "clientInfo": session.client_info.to_dict(),
            },
        )

    def on_result(self, session: ClientSession, result: Mapping[str, Any]) -> SessionEvent:
        parsed = InitializeResult.from_dict(result)
        version = parsed.protocol_version
        if version not in LEGACY_VERSIONS:
            raise VersionNegotiationError(
                f"the server answered initialize with protocol version {version!r}, which this "
                f"client does not speak (it speaks {', '.join(LEGACY_VERSIONS)})",
                offered=self.offered,
                received=version,
            )
        session._queue(Notification("notifications/initialized"))
        return HandshakeComplete(parsed, features(version))


class ClientSession:
    """The sans-IO client side of one MCP session.

    ``capabilities`` is the client capabilities object to declare (declare
    ``roots``, ``sampling`` or ``elicitation`` only when something answers
    them); ``protocol_version`` is the version to offer.
    """

    def __init__(
        self,
        *,
        client_info: Implementation | None = None,
        capabilities: Mapping[str, Any] | None = None,
        protocol_version: str = LATEST_LEGACY_VERSION,
    ) -> None:
        if protocol_version not in LEGACY_VERSIONS:
            raise ConfigError(
                f"protocol_version {protocol_version!r} cannot be offered in an initialize "
                f"handshake; choose one of {', '.join(LEGACY_VERSIONS)}"
            )
        self.client_info = client_info or Implementation(name="opex-trio", version=__version__)
        self.capabilities: Mapping[str, Any] = dict(capabilities or {})
        self.state = SessionState.NEW
        self.next_id = jsonrpc.IdAllocator()
        self._opening = _LegacyOpening(protocol_version)
        self._opening_id: RequestId | None = None
        # id -> (method, context); plain tuples, since this is on every request's path.
        self._pending: dict[RequestId, tuple[str, Any]] = {}
        self._server_requests: set[RequestId] = set()
        self._outbox: list[Message] = []
        self.initialize_result: InitializeResult | None = None
        self.features: Features | None = None

    # -- what the owner reads

    @property
    def era(self) -> Era:
        """The era the session opens in."""
        return self._opening.era

    @property
    def protocol_version(self) -> str | None:
        """The negotiated protocol version, once the session is open."""
        return self.features.version if self.features else None

    @property
    def pending_count(self) -> int:
        """How many requests await their response."""
        return len(self._pending)

    def take_outgoing(self) -> list[Message]:
        """Messages the session queued on its own; the owner must send them, in order."""
        out, self._outbox = self._outbox, []
        return out

    # -- what the owner asks for

    def open(self) -> None:
        """Start the handshake; its first message is in the outbox."""
        if self.state is not SessionState.NEW:
            raise ProtocolError(f"cannot open a session that is {self.state.value}")
        request = self._opening.first_request(self)
        self._opening_id = request.id
        self._pending[request.id] = (request.method, None)
        self.state = SessionState.OPENING
        self._outbox.append(request)

    def send_request(
        self, method: str, params: Mapping[str, Any] | None = None, *, context: Any = None
    ) -> Request:
        """Build a request, record it as pending with ``context``, and return it to send."""
        self._check_may_send(method)
        request = Request(self.next_id(), method, params)
        self._pending[request.id] = (method, context)
        return request

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
        nothing is queued. The ``initialize`` request is never cancelled on the
        wire, as the specification demands.
        """
        pending = self._pending.pop(request_id, None)
        if pending is None:
            return None
        if notify and request_id != self._opening_id and self.state is not SessionState.CLOSED:
            params: dict[str, Any] = {"requestId": request_id}
            if reason:
                params["reason"] = reason
            self._outbox.append(Notification("notifications/cancelled", params))
        return pending[1]

    def respond(self, request_id: RequestId, result: Mapping[str, Any]) -> None:
        """Queue the answer to a server request from :class:`RequestReceived`."""
        if self._server_requests_done(request_id):
            self._outbox.append(Response(request_id, result))

    def respond_error(
        self, request_id: RequestId, code: int, message: str, data: Any = None
    ) -> None:
        """Queue an error answer to a server request from :class:`RequestReceived`."""
        if self._server_requests_done(request_id):
            self._outbox.append(ErrorResponse(request_id, ErrorObject(code, message, data)))

    def close(self) -> list[tuple[RequestId, str, Any]]:
        """Close the session; return the pending requests (id, method, context) it abandons."""
        self.state = SessionState.CLOSED
        abandoned = [(rid, method, ctx) for rid, (method, ctx) in self._pending.items()]
        self._pending.clear()
        self._server_requests.clear()
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
                events.append(self.receive_message(message))
        return events

    def receive_message(self, message: Message) -> SessionEvent:
        """Handle one parsed message and return what it means."""
        if self.state is SessionState.CLOSED:
            return LateResponse(getattr(message, "id", None))
        if isinstance(message, Response):
            return self._on_response(message)
        if isinstance(message, ErrorResponse):
            return self._on_error(message)
        if isinstance(message, Request):
            return self._on_request(message)
        return self._on_notification(message)

    # -- internals

    def _queue(self, message: Message) -> None:
        self._outbox.append(message)

    def _check_may_send(self, method: str) -> None:
        if self.state is SessionState.READY:
            feats = self.features
            assert feats is not None
            if method == "ping" and not feats.ping:
                raise ProtocolError(f"ping does not exist in protocol version {feats.version}")
            if method == "logging/setLevel" and not feats.logging_set_level:
                raise ProtocolError(
                    f"logging/setLevel does not exist in protocol version {feats.version}"
                )
            return
        if self.state is SessionState.OPENING and method == "ping":
            return
        raise ProtocolError(
            f"cannot send {method} while the session is {self.state.value}"
            + (" (only ping may be sent before the handshake ends)" if method != "ping" else "")
        )

    def _server_requests_done(self, request_id: RequestId) -> bool:
        if request_id in self._server_requests:
            self._server_requests.discard(request_id)
            return self.state is not SessionState.CLOSED
        return False

    def _invalid(self, exc: ProtocolError) -> SessionEvent:
        rid = exc.request_id
        if rid is not None:
            pending = self._pending.get(rid)
            if pending is not None:
                # A malformed answer to one of our requests fails that request
                # now instead of leaving it to time out.
                del self._pending[rid]
                if rid == self._opening_id:
                    return self._handshake_failed(exc)
                return ErrorReceived(rid, pending[0], exc, pending[1])
        return InvalidMessage(exc)

    def _handshake_failed(self, error: Exception) -> SessionEvent:
        self.close()
        return HandshakeFailed(error)

    def _on_response(self, message: Response) -> SessionEvent:
        pending = self._pending.pop(message.id, None)
        if pending is None:
            return LateResponse(message.id)
        if message.id == self._opening_id:
            try:
                event = self._opening.on_result(self, message.result)
            except ProtocolError as exc:
                return self._handshake_failed(exc)
            assert isinstance(event, HandshakeComplete)
            self.initialize_result = event.result
            self.features = event.features
            self.state = SessionState.READY
            return event
        return ResponseReceived(message.id, pending[0], message.result, pending[1])

    def _on_error(self, message: ErrorResponse) -> SessionEvent:
        rid = message.id
        pending = self._pending.pop(rid, None) if rid is not None else None
        if pending is None:
            return LateResponse(rid)
        err = message.error
        error = McpError(err.code, err.message, err.data, method=pending[0])
        if rid == self._opening_id:
            return self._handshake_failed(error)
        return ErrorReceived(rid, pending[0], error, pending[1])  # type: ignore[arg-type]

    def _on_request(self, message: Request) -> SessionEvent:
        if message.method == "ping":
            self._outbox.append(Response(message.id, {}))
            return RequestHandled(message)
        capability = _HANDLED_REQUESTS.get(message.method)
        if capability is not None and capability in self.capabilities:
            self._server_requests.add(message.id)
            return RequestReceived(message)
        self._outbox.append(
            ErrorResponse(
                message.id,
                ErrorObject(
                    jsonrpc.METHOD_NOT_FOUND,
                    f"method not supported by this client: {message.method}",
                ),
            )
        )
        return RequestHandled(message)

    def _on_notification(self, message: Notification) -> SessionEvent:
        method = message.method
        params = message.params or {}
        try:
            if method == "notifications/progress":
                return ProgressReceived(ProgressParams.from_dict(params, method))
            if method == "notifications/message":
                return LogReceived(LoggingMessageParams.from_dict(params, method))
            kind = _LIST_CHANGED.get(method)
            if kind is not None:
                return ListChanged(kind)
            if method == "notifications/resources/updated":
                return ResourceUpdated(ResourceUpdatedParams.from_dict(params, method).uri)
            if method == "notifications/cancelled":
                cancelled = CancelledParams.from_dict(params, method)
                if cancelled.request_id in self._server_requests:
                    self._server_requests.discard(cancelled.request_id)
                return CancelledByServer(cancelled)
        except ProtocolError as exc:
            return InvalidMessage(exc)
        return NotificationReceived(message)
