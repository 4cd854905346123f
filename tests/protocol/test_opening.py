"""How a detecting session copes with a probe bound that ran out too soon, and refused openings."""

from __future__ import annotations

from opex_trio.errors import TransportError
from opex_trio.protocol.jsonrpc import Notification, Request
from opex_trio.protocol.session import (
    ClientSession,
    EraDetected,
    HandshakeComplete,
    HandshakeFailed,
    LateResponse,
    SessionState,
)
from opex_trio.protocol.versions import LATEST_VERSION, Era

from .test_modern import discover_result, probe
from .test_session import init_result, server_says


def _fallen_back() -> tuple[ClientSession, Request, Request]:
    session = ClientSession(era=None)
    request = probe(session)
    session.fall_back_to_legacy("no answer within 0.1 s")
    (init,) = session.take_outgoing()
    assert isinstance(init, Request) and init.method == "initialize"
    return session, request, init


def test_a_discover_result_after_the_fallback_opens_the_session_modern() -> None:
    session, request, init = _fallen_back()
    events = server_says(session, {"jsonrpc": "2.0", "id": request.id, "result": discover_result()})
    assert [type(e) for e in events] == [EraDetected, HandshakeComplete]
    detected, opened = events
    assert isinstance(detected, EraDetected) and detected.era is Era.MODERN
    assert isinstance(opened, HandshakeComplete) and opened.features.era is Era.MODERN
    assert session.state is SessionState.READY and session.era is Era.MODERN
    assert session.protocol_version == LATEST_VERSION
    # Nothing more goes out: no notifications/initialized, no cancellation of initialize.
    assert session.take_outgoing() == []
    # The modern server's refusal of initialize is a late answer now.
    error = {"code": -32022, "message": "modern only", "data": {"supported": [LATEST_VERSION]}}
    late = server_says(session, {"jsonrpc": "2.0", "id": init.id, "error": error})
    assert late == [LateResponse(init.id)]
    assert session.pending_count == 0
    # Requests now carry the modern _meta.
    call = session.send_request("tools/list")
    assert call.params is not None and "_meta" in call.params


def test_a_legacy_answer_first_wins_and_the_late_discover_result_is_dropped() -> None:
    session, request, init = _fallen_back()
    server_says(session, {"jsonrpc": "2.0", "id": init.id, "result": init_result("2025-11-25")})
    assert session.take_outgoing() == [Notification("notifications/initialized")]
    late = server_says(session, {"jsonrpc": "2.0", "id": request.id, "result": discover_result()})
    assert late == [LateResponse(request.id)]
    assert session.era is Era.LEGACY and session.protocol_version == "2025-11-25"


def test_a_late_answer_that_is_no_discover_result_changes_nothing() -> None:
    session, request, init = _fallen_back()
    late = server_says(session, {"jsonrpc": "2.0", "id": request.id, "result": {"odd": 1}})
    assert late == [LateResponse(request.id)]
    assert session.state is SessionState.OPENING
    server_says(session, {"jsonrpc": "2.0", "id": init.id, "result": init_result("2025-11-25")})
    assert session.era is Era.LEGACY and session.protocol_version == "2025-11-25"


def test_a_refused_probe_delivery_means_legacy() -> None:
    session = ClientSession(era=None)
    request = probe(session)
    assert session.opening_failed("another", TransportError("other")) is None
    events = session.opening_failed(request.id, TransportError("HTTP 400"))
    assert events is not None
    (event,) = events
    assert isinstance(event, EraDetected) and event.era is Era.LEGACY
    assert "HTTP 400" in event.reason
    (init,) = session.take_outgoing()
    assert isinstance(init, Request) and init.method == "initialize"


def test_a_refused_pinned_opening_fails_at_once() -> None:
    session = ClientSession(era=Era.MODERN)
    request = probe(session)
    events = session.opening_failed(request.id, TransportError("HTTP 400"))
    assert events is not None
    (event,) = events
    assert isinstance(event, HandshakeFailed) and "HTTP 400" in str(event.error)
    assert session.state is SessionState.CLOSED and session.take_outgoing() == []
