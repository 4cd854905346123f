"""How a session opens, and how it finds out the server's era when asked to.

The session pins an era or detects it (see :mod:`.session`). Detection sends
``server/discover`` first, carrying the preferred modern version in ``_meta``:

* a ``DiscoverResult`` means modern, and the session is open;
* a modern error code (``-32020`` to ``-32022``) means modern too: an
  ``UnsupportedProtocolVersionError`` makes it ask again with a version from
  the server's list;
* any other error, or a result that is no ``DiscoverResult``, means legacy,
  and ``initialize`` follows;
* silence is the owner's to time: it bounds the wait and calls
  :func:`fall_back`, as it does when an HTTP rejection is legacy by
  :func:`era_of_http_rejection` (:func:`opening_failed`).

The bound can be too short for a slow modern server on a loaded machine. Two
late answers undo the fallback: the ``DiscoverResult`` of the abandoned probe
(:func:`late_probe_answer`), and a modern server's refusal of ``initialize``
naming a modern version (:func:`on_error`). Either way the session opens in
the modern era and the legacy attempt is forgotten.

These functions do the work on the session they are given; the session keeps
the state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import McpError, ProtocolError, UnsupportedProtocolVersionError
from . import jsonrpc
from .events import (
    EraDetected,
    HandshakeComplete,
    HandshakeFailed,
    LateResponse,
    RequestResent,
    SessionEvent,
)
from .jsonrpc import RequestId
from .legacy import LegacyOpening
from .modern import MODERN_ERROR_CODES, ModernOpening, choose_version
from .versions import Era

if TYPE_CHECKING:
    from .session import ClientSession

__all__ = [
    "era_of_http_rejection",
    "era_of_probe_error",
    "fall_back",
    "late_probe_answer",
    "on_error",
    "on_result",
    "opening_failed",
    "send_opening",
]


def era_of_probe_error(code: int) -> Era:
    """The era a JSON-RPC error to the ``server/discover`` probe reveals.

    Only the modern error codes identify a modern server; every other code
    (``-32601``, ``-32602``, ...) is what legacy servers answer a request
    before ``initialize`` with.
    """
    return Era.MODERN if code in MODERN_ERROR_CODES else Era.LEGACY


def era_of_http_rejection(status: int, body: bytes | str | None) -> Era:
    """The era an HTTP 4xx answer to a modern request reveals.

    A body holding a JSON-RPC error with a modern code means a modern server
    that refused this request (answer the error, do not fall back); an empty
    body or anything else means a legacy server.
    """
    if not 400 <= status < 500 or not body:
        return Era.LEGACY
    code = jsonrpc.error_code(body)
    return Era.LEGACY if code is None else era_of_probe_error(code)


def send_opening(session: ClientSession) -> None:
    """Queue the first request of the session's current opening and record it as pending."""
    request = session._opening.first_request(session)
    session._opening_id = request.id
    session._pending.add(request.id, request.method, None)
    session.queue(request)


def fall_back(session: ClientSession, reason: str) -> EraDetected:
    """Give up the probe and open with ``initialize``; a late answer may still undo it."""
    probe = session._opening_id
    if probe is not None:
        session._pending.pop(probe)
    session._abandoned_probe = probe
    return _to_legacy(session, reason)


def opening_failed(
    session: ClientSession, request_id: RequestId, error: Exception
) -> list[SessionEvent] | None:
    """The transport could not deliver the opening request (an HTTP status, say).

    ``None`` when ``request_id`` is not the opening request. While probing,
    the failure means legacy (the rejection carried no modern error, or it
    would have come as the answer); otherwise the session could not open.
    """
    if request_id != session._opening_id or session._opening_id is None:
        return None
    if session.probing:
        return [fall_back(session, f"server/discover failed: {error}")]
    session._pending.pop(request_id)
    return [_failed(session, error)]


def on_result(session: ClientSession, result: Mapping[str, Any]) -> list[SessionEvent]:
    """The answer to the opening request."""
    try:
        event = session._opening.on_result(session, result)
    except ProtocolError as exc:
        if session._detecting and "supportedVersions" not in result:
            # A legacy server that answers any method with some result.
            return [_to_legacy(session, f"the answer to server/discover was not one: {exc}")]
        return [_failed(session, exc)]
    return [_complete(session, event)]


def on_error(session: ClientSession, rid: RequestId, error: McpError) -> SessionEvent:
    """An error answer to the opening request."""
    opening = session._opening
    if isinstance(opening, LegacyOpening) and isinstance(error, UnsupportedProtocolVersionError):
        version = choose_version(error.supported, session._modern_version)
        if version is not None:
            # We fell back too soon (a slow probe answer): the server is modern after all.
            session._abandoned_probe = None
            session._opening = ModernOpening(version)
            send_opening(session)
            assert session._opening_id is not None
            return RequestResent(rid, session._opening_id, "server/discover", str(error))
    if isinstance(opening, ModernOpening):
        if isinstance(error, UnsupportedProtocolVersionError):
            if opening.retry_version(error) is not None:
                session._detecting = False
                send_opening(session)
                assert session._opening_id is not None
                return RequestResent(rid, session._opening_id, "server/discover", str(error))
        elif session._detecting and era_of_probe_error(error.code) is Era.LEGACY:
            return _to_legacy(session, f"the server answered server/discover with: {error}")
    return _failed(session, error)


def late_probe_answer(
    session: ClientSession, rid: RequestId, result: Mapping[str, Any]
) -> list[SessionEvent]:
    """A result to the probe given up on, while the session still opens.

    A ``DiscoverResult`` means the server is modern after all: the session
    opens with it, and the ``initialize`` (or discovery) still in flight is
    forgotten, so its answer comes out as a late response. Anything else is
    a late response itself.
    """
    session._abandoned_probe = None
    modern = ModernOpening(session._modern_version)
    try:
        event = modern.on_result(session, result)
    except ProtocolError:
        return [LateResponse(rid)]
    if session._opening_id is not None:
        # Never cancelled on the wire: the specification forbids it for initialize.
        session._pending.pop(session._opening_id)
        session._opening_id = None
    session._opening = modern
    detected = EraDetected(Era.MODERN, "server/discover was answered after the fallback")
    return [detected, _complete(session, event)]


def _to_legacy(session: ClientSession, reason: str) -> EraDetected:
    session._detecting = False
    session._opening = LegacyOpening(session._legacy_version)
    send_opening(session)
    return EraDetected(Era.LEGACY, reason)


def _complete(session: ClientSession, event: Any) -> SessionEvent:
    from .session import SessionState

    assert isinstance(event, HandshakeComplete)
    session._detecting = False
    session.initialize_result = event.result
    session.features = event.features
    session.state = SessionState.READY
    return event


def _failed(session: ClientSession, error: Exception) -> SessionEvent:
    session.close()
    return HandshakeFailed(error)
