"""The client session state machine, driven by hand: no IO."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opex_trio.errors import ConfigError, McpError, ProtocolError, VersionNegotiationError
from opex_trio.protocol import jsonrpc
from opex_trio.protocol.jsonrpc import ErrorResponse, Notification, Request, Response
from opex_trio.protocol.session import (
    CancelledByServer,
    ClientSession,
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
    ResourceUpdated,
    ResponseReceived,
    SessionState,
)
from opex_trio.protocol.versions import FEATURES, LATEST_LEGACY_VERSION, LEGACY_VERSIONS, Era


def server_says(session: ClientSession, obj: Any) -> list[Any]:
    return session.receive_data(json.dumps(obj))


def init_result(version: str) -> dict[str, Any]:
    return {
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": True}},
        "serverInfo": {"name": "srv", "version": "2"},
    }


def opened(version: str = LATEST_LEGACY_VERSION, **kwargs: Any) -> ClientSession:
    session = ClientSession(**kwargs)
    session.open()
    (init,) = session.take_outgoing()
    assert isinstance(init, Request)
    server_says(session, {"jsonrpc": "2.0", "id": init.id, "result": init_result(version)})
    assert session.take_outgoing() == [Notification("notifications/initialized")]
    return session


def test_handshake_offers_the_latest_version_and_ends_with_initialized() -> None:
    session = ClientSession(capabilities={"roots": {"listChanged": True}})
    assert session.era is Era.LEGACY
    session.open()
    (init,) = session.take_outgoing()
    assert isinstance(init, Request) and init.method == "initialize"
    assert init.params is not None
    assert init.params["protocolVersion"] == LATEST_LEGACY_VERSION
    assert init.params["capabilities"] == {"roots": {"listChanged": True}}
    assert init.params["clientInfo"]["name"] == "opex-trio"
    opening_state = session.state
    assert opening_state is SessionState.OPENING
    event: object
    (event,) = server_says(
        session, {"jsonrpc": "2.0", "id": init.id, "result": init_result("2025-11-25")}
    )
    assert isinstance(event, HandshakeComplete)
    assert event.result.server_info.name == "srv"
    assert session.state is SessionState.READY
    assert session.protocol_version == "2025-11-25"
    assert session.take_outgoing() == [Notification("notifications/initialized")]


@pytest.mark.parametrize("version", LEGACY_VERSIONS)
def test_every_supported_counter_offer_is_accepted(version: str) -> None:
    session = opened(version)
    assert session.features == FEATURES[version]


def test_an_unsupported_counter_offer_is_refused_clearly() -> None:
    session = ClientSession()
    session.open()
    (init,) = session.take_outgoing()
    assert isinstance(init, Request)
    (event,) = server_says(
        session, {"jsonrpc": "2.0", "id": init.id, "result": init_result("1999-01-01")}
    )
    assert isinstance(event, HandshakeFailed)
    assert isinstance(event.error, VersionNegotiationError)
    assert "'1999-01-01'" in str(event.error) and "2025-11-25" in str(event.error)
    assert event.error.received == "1999-01-01"
    assert session.state is SessionState.CLOSED
    assert session.take_outgoing() == []


def test_a_handshake_error_or_malformed_result_fails_the_opening() -> None:
    session = ClientSession()
    session.open()
    (init,) = session.take_outgoing()
    assert isinstance(init, Request)
    (event,) = server_says(
        session, {"jsonrpc": "2.0", "id": init.id, "error": {"code": -32602, "message": "no"}}
    )
    assert isinstance(event, HandshakeFailed) and isinstance(event.error, McpError)
    session = ClientSession()
    session.open()
    (init,) = session.take_outgoing()
    assert isinstance(init, Request)
    (event,) = server_says(session, {"jsonrpc": "2.0", "id": init.id, "result": {"nope": 1}})
    assert isinstance(event, HandshakeFailed) and isinstance(event.error, ProtocolError)


def test_only_ping_before_the_handshake_ends() -> None:
    session = ClientSession()
    with pytest.raises(ProtocolError, match="new"):
        session.send_request("ping")
    session.open()
    session.send_request("ping")
    with pytest.raises(ProtocolError, match="only ping may be sent"):
        session.send_request("tools/list")
    with pytest.raises(ProtocolError):
        session.send_notification("notifications/roots/list_changed")


def test_offering_an_unknown_version_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="2026-07-28"):
        ClientSession(protocol_version="2026-07-28")


def test_responses_carry_the_context_back() -> None:
    session = opened()
    request = session.send_request("tools/list", {}, context="slot-a")
    (event,) = server_says(session, {"jsonrpc": "2.0", "id": request.id, "result": {"tools": []}})
    assert event == ResponseReceived(request.id, "tools/list", {"tools": []}, "slot-a")
    assert session.pending_count == 0
    request = session.send_request("tools/call", {"name": "x"}, context="slot-b")
    (event,) = server_says(
        session, {"jsonrpc": "2.0", "id": request.id, "error": {"code": -32602, "message": "bad"}}
    )
    assert isinstance(event, ErrorReceived) and event.context == "slot-b"
    assert isinstance(event.error, McpError) and event.error.code == -32602
    assert event.error.method == "tools/call"


def test_a_malformed_response_fails_its_request_at_once() -> None:
    session = opened()
    request = session.send_request("tools/list", context="slot")
    (event,) = server_says(session, {"jsonrpc": "2.0", "id": request.id, "result": [1, 2]})
    assert isinstance(event, ErrorReceived)
    assert isinstance(event.error, ProtocolError) and event.context == "slot"


def test_cancel_tells_the_server_and_the_late_response_is_dropped() -> None:
    session = opened()
    request = session.send_request("tools/call", {"name": "slow"}, context="slot")
    assert session.cancel(request.id, "timed out") == "slot"
    assert session.take_outgoing() == [
        Notification("notifications/cancelled", {"requestId": request.id, "reason": "timed out"})
    ]
    (event,) = server_says(session, {"jsonrpc": "2.0", "id": request.id, "result": {}})
    assert event == LateResponse(request.id)
    assert session.cancel(request.id) is None
    other = session.send_request("ping", context="p")
    assert session.cancel(other.id, notify=False) == "p"
    assert session.take_outgoing() == []


def test_initialize_is_never_cancelled_on_the_wire() -> None:
    session = ClientSession()
    session.open()
    (init,) = session.take_outgoing()
    assert isinstance(init, Request)
    session.cancel(init.id)
    assert session.take_outgoing() == []


def test_ping_is_answered_and_unknown_server_requests_get_an_error() -> None:
    session = opened()
    (event,) = server_says(session, {"jsonrpc": "2.0", "id": "p1", "method": "ping"})
    assert isinstance(event, RequestHandled)
    assert session.take_outgoing() == [Response("p1", {})]
    (event,) = server_says(session, {"jsonrpc": "2.0", "id": 9, "method": "sampling/createMessage"})
    assert isinstance(event, RequestHandled)
    (reply,) = session.take_outgoing()
    assert isinstance(reply, ErrorResponse) and reply.error.code == jsonrpc.METHOD_NOT_FOUND


def test_declared_server_requests_reach_the_owner_and_are_answered_once() -> None:
    session = opened(capabilities={"sampling": {}, "roots": {}})
    (event,) = server_says(session, {"jsonrpc": "2.0", "id": 5, "method": "roots/list"})
    assert isinstance(event, RequestReceived) and event.request.method == "roots/list"
    assert session.take_outgoing() == []
    session.respond(5, {"roots": []})
    session.respond(5, {"roots": ["again"]})
    assert session.take_outgoing() == [Response(5, {"roots": []})]
    server_says(session, {"jsonrpc": "2.0", "id": 6, "method": "sampling/createMessage"})
    (event,) = server_says(
        session, {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 6}}
    )
    assert isinstance(event, CancelledByServer) and event.params.request_id == 6
    session.respond_error(6, -1, "too late")
    assert session.take_outgoing() == []


def test_notifications_become_typed_events() -> None:
    session = opened()
    events = [
        server_says(session, {"jsonrpc": "2.0", "method": method, "params": params})[0]
        for method, params in [
            ("notifications/progress", {"progressToken": 1, "progress": 2, "total": 4}),
            ("notifications/message", {"level": "info", "data": "hi"}),
            ("notifications/tools/list_changed", None),
            ("notifications/prompts/list_changed", None),
            ("notifications/resources/updated", {"uri": "file:///a"}),
            ("notifications/custom", {"x": 1}),
            ("notifications/progress", {"progress": 1}),
        ]
    ]
    assert isinstance(events[0], ProgressReceived) and events[0].params.total == 4
    assert isinstance(events[1], LogReceived) and events[1].params.data == "hi"
    assert events[2] == ListChanged("tools") and events[3] == ListChanged("prompts")
    assert events[4] == ResourceUpdated("file:///a")
    assert isinstance(events[5], NotificationReceived)
    assert isinstance(events[6], InvalidMessage)
    assert "progressToken" in str(events[6].error)


def test_batches_follow_the_negotiated_version() -> None:
    batch = json.dumps(
        [
            {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"},
            {"jsonrpc": "2.0", "id": "p", "method": "ping"},
        ]
    )
    allowed = opened("2025-03-26")
    events = allowed.receive_data(batch)
    assert events[0] == ListChanged("tools") and isinstance(events[1], RequestHandled)
    refused = opened("2025-06-18")
    (event,) = refused.receive_data(batch)
    assert isinstance(event, InvalidMessage) and "batches are not allowed" in str(event.error)


def test_version_rules_after_negotiation() -> None:
    session = opened("2024-11-05")
    assert session.features is not None and not session.features.structured_content
    session.send_request("logging/setLevel", {"level": "info"})
    session.send_request("ping")


def test_close_abandons_pending_requests() -> None:
    session = opened()
    a = session.send_request("tools/list", context="a")
    b = session.send_request("ping", context="b")
    assert sorted(ctx for _, _, ctx in session.close()) == ["a", "b"]
    assert session.state is SessionState.CLOSED
    (event,) = server_says(session, {"jsonrpc": "2.0", "id": a.id, "result": {}})
    assert isinstance(event, LateResponse)
    assert b.id != a.id


def test_garbage_is_reported_not_raised() -> None:
    session = opened()
    (event,) = session.receive_data(b"Starting server on stdio...")
    assert isinstance(event, InvalidMessage) and event.error.code == jsonrpc.PARSE_ERROR


# -- what the session sends is valid for every protocol version


def _validators(mcp_spec: Path, version: str) -> dict[str, Any]:
    """Validators for the envelope and for what a client may send, from the version's schema."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((mcp_spec / "schema" / version / "schema.json").read_text())
    defs_key = "$defs" if "$defs" in schema else "definitions"
    cls = jsonschema.validators.validator_for(schema)
    return {
        name: cls({**schema, "$ref": f"#/{defs_key}/{name}"})
        for name in ("JSONRPCMessage", "ClientRequest", "ClientNotification", "ClientResult")
    }


def _problems(validators: dict[str, Any], message: jsonrpc.Message) -> list[str]:
    wire = message.to_dict()
    checks = [("JSONRPCMessage", wire)]
    if isinstance(message, Request):
        checks.append(("ClientRequest", wire))
    elif isinstance(message, Notification):
        checks.append(("ClientNotification", wire))
    elif isinstance(message, Response):
        checks.append(("ClientResult", wire["result"]))
    return [
        f"{name}: {error.message[:200]}"
        for name, instance in checks
        for error in validators[name].iter_errors(instance)
    ]


def _outgoing_messages(version: str) -> list[jsonrpc.Message]:
    session = ClientSession(capabilities={"roots": {"listChanged": True}, "sampling": {}})
    session.open()
    sent = session.take_outgoing()
    init = sent[0]
    assert isinstance(init, Request)
    server_says(session, {"jsonrpc": "2.0", "id": init.id, "result": init_result(version)})
    sent += session.take_outgoing()
    call = session.send_request(
        "tools/call", {"name": "echo", "arguments": {"m": 1}, "_meta": {"progressToken": 1}}
    )
    sent += [
        session.send_request("tools/list", {"cursor": "abc"}),
        session.send_request("ping"),
        session.send_request("resources/read", {"uri": "file:///x"}),
        session.send_request("prompts/get", {"name": "p", "arguments": {"a": "b"}}),
        session.send_request(
            "completion/complete",
            {"ref": {"type": "ref/prompt", "name": "p"}, "argument": {"name": "a", "value": ""}},
        ),
        session.send_request("logging/setLevel", {"level": "debug"}),
        call,
    ]
    session.cancel(call.id, "timeout")
    server_says(session, {"jsonrpc": "2.0", "id": 77, "method": "ping"})
    server_says(session, {"jsonrpc": "2.0", "id": 78, "method": "roots/list"})
    session.respond(78, {"roots": [{"uri": "file:///tmp", "name": "tmp"}]})
    server_says(session, {"jsonrpc": "2.0", "id": 79, "method": "elicitation/create"})
    sent += session.take_outgoing()
    return sent


@pytest.mark.parametrize("version", LEGACY_VERSIONS)
def test_outgoing_messages_validate_against_the_schema(mcp_spec: Path, version: str) -> None:
    validators = _validators(mcp_spec, version)
    messages = _outgoing_messages(version)
    assert len(messages) >= 12
    for message in messages:
        assert not _problems(validators, message), message


def test_the_schema_check_catches_a_bad_message(mcp_spec: Path) -> None:
    validators = _validators(mcp_spec, "2025-11-25")
    bad = Request(1, "tools/call", {"arguments": {}})  # no tool name
    assert _problems(validators, bad)
