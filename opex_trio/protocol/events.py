"""What :meth:`ClientSession.receive_data <.session.ClientSession.receive_data>` reports.

Every event is a frozen attrs class. The owner of a session dispatches on the
class; the events of the two eras are the same wherever the meaning is the
same (a list change is a :class:`ListChanged` whether it came as a legacy
notification or on a ``subscriptions/listen`` stream).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from ..errors import McpError, ProtocolError
from .jsonrpc import Notification, Request, RequestId
from .modern import SUBSCRIPTION_ID_KEY, DiscoverResult, SubscriptionFilter
from .types import (
    CancelledParams,
    InitializeResult,
    LoggingMessageParams,
    ProgressParams,
    ResourceUpdatedParams,
)
from .versions import Era, Features

__all__ = [
    "CancelledByServer",
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
    "SubscriptionAcknowledged",
    "SubscriptionEnded",
    "notification_event",
]


@attrs.frozen
class SessionEvent:
    """Base class of what :meth:`ClientSession.receive_data` reports."""


@attrs.frozen
class HandshakeComplete(SessionEvent):
    """The session is open; ``result`` is the server's answer to the handshake.

    In the modern era there is no ``initialize``: ``result`` is built from the
    server's ``server/discover`` answer (its ``protocolVersion`` is the version
    chosen), which ``discover`` holds as it came.
    """

    result: InitializeResult
    features: Features
    discover: DiscoverResult | None = None


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
    subscription_id: RequestId | None = None
    """The ``subscriptions/listen`` stream it came on (modern era), else ``None``."""


@attrs.frozen
class ResourceUpdated(SessionEvent):
    """A resource the client subscribed to changed."""

    uri: str
    subscription_id: RequestId | None = None
    """The ``subscriptions/listen`` stream it came on (modern era), else ``None``."""


@attrs.frozen
class NotificationReceived(SessionEvent):
    """Any other notification, passed on as it came."""

    notification: Notification


@attrs.frozen
class InvalidMessage(SessionEvent):
    """Something arrived that is not a valid message; it was skipped."""

    error: ProtocolError


@attrs.frozen
class EraDetected(SessionEvent):
    """The server's era is known before the session opened.

    Emitted when detection decided on the legacy era (the session then sends
    ``initialize``), and when a ``DiscoverResult`` that came after that
    fallback made it modern after all; ``reason`` says why. Owners cache the
    era per server process or origin and pin it next time.
    """

    era: Era
    reason: str


@attrs.frozen
class RequestResent(SessionEvent):
    """A request went out again under a new id; the new message is in the outbox.

    That happens when the server asked for input (multi round-trip requests)
    and every input was answered, or when it refused the protocol version and
    named one both sides speak. ``old_id`` no longer exists; cancelling it
    cancels ``new_id``.
    """

    old_id: RequestId
    new_id: RequestId
    method: str
    reason: str


@attrs.frozen
class SubscriptionAcknowledged(SessionEvent):
    """The server accepted a ``subscriptions/listen`` stream; ``granted`` is what it will send."""

    subscription_id: RequestId
    granted: SubscriptionFilter


@attrs.frozen
class SubscriptionEnded(SessionEvent):
    """The server closed a ``subscriptions/listen`` stream on purpose (it answered the request)."""

    subscription_id: RequestId
    context: Any


_LIST_CHANGED: dict[str, Literal["tools", "resources", "prompts"]] = {
    "notifications/tools/list_changed": "tools",
    "notifications/resources/list_changed": "resources",
    "notifications/prompts/list_changed": "prompts",
}


def notification_event(message: Notification) -> SessionEvent:
    """What a notification from the server means, in either era.

    A notification on a modern ``subscriptions/listen`` stream carries the
    stream's id in ``_meta``; the event keeps it. A notification whose
    parameters are malformed is an :class:`InvalidMessage`.
    """
    method = message.method
    params = message.params or {}
    meta = params.get("_meta")
    sub = meta.get(SUBSCRIPTION_ID_KEY) if isinstance(meta, Mapping) else None
    subscription: RequestId | None = sub if isinstance(sub, str | int) else None
    try:
        if method == "notifications/progress":
            return ProgressReceived(ProgressParams.from_dict(params, method))
        if method == "notifications/message":
            return LogReceived(LoggingMessageParams.from_dict(params, method))
        kind = _LIST_CHANGED.get(method)
        if kind is not None:
            return ListChanged(kind, subscription)
        if method == "notifications/resources/updated":
            return ResourceUpdated(
                ResourceUpdatedParams.from_dict(params, method).uri, subscription
            )
        if method == "notifications/subscriptions/acknowledged" and subscription is not None:
            return SubscriptionAcknowledged(
                subscription, SubscriptionFilter.of(params.get("notifications"))
            )
        if method == "notifications/cancelled":
            return CancelledByServer(CancelledParams.from_dict(params, method))
    except ProtocolError as exc:
        return InvalidMessage(exc)
    return NotificationReceived(message)
