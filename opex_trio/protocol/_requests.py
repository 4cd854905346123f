"""The client's requests once the era is known: building, cancelling, reading, sending again.

The session checks its options (:func:`check_options`) and whether a request
may go out; :func:`new_request` builds it (with its ``_meta`` in the modern
era) and records it as pending. A modern server may answer a request with
``input_required``: the session asks its owner for each input (:mod:`._inputs`
keeps the round) and, with the last answer, sends the request again under a
new id. A request the server refused for its version is sent again too, once,
naming a version from the server's list. :mod:`.session` decides when this
applies and keeps the state; these functions do the work on the session they
are given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ProtocolError
from ._inputs import InputRound
from ._pending import Pending
from .events import (
    ErrorReceived,
    RequestReceived,
    RequestResent,
    ResponseReceived,
    SessionEvent,
    SubscriptionEnded,
)
from .jsonrpc import Notification, Request, RequestId
from .legacy import HANDLED_REQUESTS
from .modern import INPUT_REQUIRED, LOG_LEVELS, result_type, with_meta
from .versions import LEGACY_VERSIONS, MODERN_VERSIONS, Era

if TYPE_CHECKING:
    from .session import ClientSession

__all__ = [
    "cancellation",
    "check_log_level",
    "check_options",
    "fail_round",
    "modern_response",
    "new_request",
    "resend",
    "resend_round",
]

# A global, read faster than the member off its class (see protocol/session.py).
_MODERN = Era.MODERN


def check_options(
    protocol_version: str, modern_version: str, era: Era | None, log_level: str | None
) -> None:
    """Raise :class:`ConfigError` for a session option no session can use."""
    if protocol_version not in LEGACY_VERSIONS:
        raise ConfigError(
            f"protocol_version {protocol_version!r} cannot be offered in an initialize "
            f"handshake; choose one of {', '.join(LEGACY_VERSIONS)}"
        )
    if modern_version not in MODERN_VERSIONS:
        raise ConfigError(
            f"modern_version {modern_version!r} is not a modern protocol version; choose "
            f"one of {', '.join(MODERN_VERSIONS)}"
        )
    if era is not None and not isinstance(era, Era):
        raise ConfigError(f"era must be an Era or None (detect), got {era!r}")
    check_log_level(log_level)


def check_log_level(level: str | None) -> None:
    """Raise :class:`ConfigError` unless ``level`` is ``None`` or a syslog level."""
    if level is not None and level not in LOG_LEVELS:
        raise ConfigError(f"log level {level!r} is not one of {', '.join(LOG_LEVELS)}")


def new_request(
    session: ClientSession, method: str, params: Mapping[str, Any] | None, context: Any
) -> Request:
    """Build a request in the session's era and record it as pending with ``context``."""
    rid = session.next_id()
    feats = session.features
    if feats is not None and feats.era is _MODERN:
        meta = session.meta_for(feats.version)
        if not params:
            body: Mapping[str, Any] = {"_meta": meta}
        elif "_meta" in params:
            body = with_meta(params, meta)
        else:
            body = {**params, "_meta": meta}
        request = Request(rid, method, body)
        session._pending.add(rid, method, context, params or {})
    else:
        request = Request(rid, method, params)
        session._pending.add(rid, method, context)
    return request


def cancellation(request_id: RequestId, reason: str | None) -> Notification:
    """The ``notifications/cancelled`` for the request sent under ``request_id``."""
    params: dict[str, Any] = {"requestId": request_id}
    if reason:
        params["reason"] = reason
    return Notification("notifications/cancelled", params)


def fail_round(
    session: ClientSession, input_id: RequestId, code: int, message: str
) -> list[SessionEvent]:
    """The owner could not give the input asked for under ``input_id``: its request fails."""
    waiting = session._rounds.fail(input_id)
    error = ProtocolError(
        f"the input the server asked for ({message}) could not be given", code=code
    )
    return [ErrorReceived(waiting.first_id, waiting.method, error, waiting.context)]


def resend(
    session: ClientSession,
    old_id: RequestId,
    method: str,
    params: Mapping[str, Any],
    context: Any,
    origin: tuple[RequestId, int],
    reason: str,
    extra: Mapping[str, Any] | None = None,
) -> RequestResent:
    """Queue ``method`` again under a new id, keeping its context and origin."""
    feats = session.features
    assert feats is not None
    rid = session.next_id()
    body = with_meta({**params, **extra} if extra else params, session.meta_for(feats.version))
    session._pending.add(rid, method, context, params, origin)
    session.queue(Request(rid, method, body))
    return RequestResent(old_id, rid, method, reason)


def resend_round(session: ClientSession, waiting: InputRound) -> RequestResent:
    """Send a request again with the inputs of its finished round."""
    return resend(
        session,
        waiting.first_id,
        waiting.method,
        waiting.params,
        waiting.context,
        (waiting.first_id, waiting.rounds),
        "the server asked for input",
        waiting.retry_members(),
    )


def modern_response(
    session: ClientSession, rid: RequestId, pending: Pending, result: Mapping[str, Any]
) -> list[SessionEvent]:
    """What the modern-era answer ``result`` to the pending request ``rid`` means.

    The session answers a plain complete result itself, before calling this.
    """
    error: ProtocolError | None = None
    try:
        kind = result_type(result)
    except ProtocolError as exc:
        kind, error = "", exc
    else:
        if kind == INPUT_REQUIRED:
            return _start_round(session, rid, pending, result)
    known = session._pending.finish(rid, pending)
    if pending[0] == "subscriptions/listen":
        session.subscriptions.pop(rid, None)
        return [SubscriptionEnded(rid, pending[1])]
    if kind not in session._result_types:
        # Built only here: a complete answer, the common case, needs no error.
        if error is None:
            error = ProtocolError(f"unknown resultType {kind!r} in the answer to {pending[0]}")
        return [ErrorReceived(known, pending[0], error, pending[1])]
    return [ResponseReceived(known, pending[0], result, pending[1])]


def _start_round(
    session: ClientSession, rid: RequestId, pending: Pending, result: Mapping[str, Any]
) -> list[SessionEvent]:
    method, context, params, origin = pending
    assert params is not None
    first_id, rounds = origin or (rid, 0)
    session._pending.unalias(first_id)
    answerable = {m: c for m, c in HANDLED_REQUESTS.items() if c in session.capabilities}
    try:
        waiting, requests = session._rounds.start(
            first_id, method, params, context, rounds, result, answerable
        )
    except ProtocolError as exc:
        return [ErrorReceived(first_id, method, exc, context)]
    if not requests:
        return [resend_round(session, waiting)]
    return [RequestReceived(request) for request in requests]
