"""The modern era of the session (2026-07-28), driven by hand: detection, _meta, MRTR, listen."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opex_trio.errors import (
    ConfigError,
    HeaderMismatchError,
    McpError,
    MissingRequiredClientCapabilityError,
    ProtocolError,
    UnsupportedProtocolVersionError,
    VersionNegotiationError,
)
from opex_trio.protocol import jsonrpc
from opex_trio.protocol.jsonrpc import Notification, Request
from opex_trio.protocol.modern import (
    CLIENT_CAPABILITIES_KEY,
    CLIENT_INFO_KEY,
    LOG_LEVEL_KEY,
    PROTOCOL_VERSION_KEY,
    SERVER_INFO_KEY,
    SUBSCRIPTION_ID_KEY,
    CacheHints,
    SubscriptionFilter,
)
from opex_trio.protocol.session import (
    ClientSession,
    EraDetected,
    ErrorReceived,
    HandshakeComplete,
    HandshakeFailed,
    LateResponse,
    ListChanged,
    RequestReceived,
    RequestResent,
    ResourceUpdated,
    ResponseReceived,
    SessionState,
    SubscriptionAcknowledged,
    SubscriptionEnded,
    era_of_http_rejection,
    era_of_probe_error,
)
from opex_trio.protocol.versions import LATEST_VERSION, Era

from .test_session import _validators, init_result, server_says

CAPS: dict[str, Any] = {"elicitation": {}, "sampling": {}, "roots": {}}


def discover_result(versions: list[str] | None = None) -> dict[str, Any]:
    return {
        "resultType": "complete",
        "supportedVersions": versions or [LATEST_VERSION],
        "capabilities": {"tools": {"listChanged": True}},
        "_meta": {SERVER_INFO_KEY: {"name": "modern-srv", "version": "3"}},
        "instructions": "be brief",
        "ttlMs": 60000,
        "cacheScope": "public",
    }


def probe(session: ClientSession) -> Request:
    session.open()
    (request,) = session.take_outgoing()
    assert isinstance(request, Request) and request.method == "server/discover"
    return request


def modern(caps: dict[str, Any] | None = None, **kwargs: Any) -> ClientSession:
    session = ClientSession(era=Era.MODERN, capabilities=CAPS if caps is None else caps, **kwargs)
    request = probe(session)
    (event,) = server_says(
        session, {"jsonrpc": "2.0", "id": request.id, "result": discover_result()}
    )
    assert isinstance(event, HandshakeComplete)
    assert session.take_outgoing() == []
    return session


def meta_of(request: Request) -> dict[str, Any]:
    assert request.params is not None
    meta = request.params["_meta"]
    assert isinstance(meta, dict)
    return meta


# -- era detection


def test_a_discover_result_opens_a_modern_session() -> None:
    session = ClientSession(era=None, capabilities=CAPS)
    request = probe(session)
    assert session.probing
    meta = meta_of(request)
    assert meta[PROTOCOL_VERSION_KEY] == LATEST_VERSION
    assert meta[CLIENT_CAPABILITIES_KEY] == CAPS
    assert meta[CLIENT_INFO_KEY]["name"] == "opex-trio"
    (event,) = server_says(
        session, {"jsonrpc": "2.0", "id": request.id, "result": discover_result()}
    )
    assert isinstance(event, HandshakeComplete)
    assert event.features.era is Era.MODERN and session.era is Era.MODERN
    assert event.result.server_info.name == "modern-srv"
    assert event.result.instructions == "be brief"
    assert event.discover is not None and event.discover.cache_hints == CacheHints(60000, "public")
    opened = (session.state, session.probing, session.protocol_version)
    assert opened == (SessionState.READY, False, LATEST_VERSION)


@pytest.mark.parametrize("code", [-32601, -32602, -32600, -32000, -32603])
def test_any_other_error_to_the_probe_means_legacy(code: int) -> None:
    session = ClientSession(era=None)
    request = probe(session)
    error = {"code": code, "message": "Method not found or not initialized"}
    (event,) = server_says(session, {"jsonrpc": "2.0", "id": request.id, "error": error})
    assert isinstance(event, EraDetected) and event.era is Era.LEGACY
    (init,) = session.take_outgoing()
    assert isinstance(init, Request) and init.method == "initialize"
    server_says(session, {"jsonrpc": "2.0", "id": init.id, "result": init_result("2025-11-25")})
    assert session.take_outgoing() == [Notification("notifications/initialized")]
    assert session.state is SessionState.READY and session.era is Era.LEGACY


def test_a_silent_probe_falls_back_when_the_owner_says_and_a_late_error_is_dropped() -> None:
    session = ClientSession(era=None)
    request = probe(session)
    event = session.fall_back_to_legacy("no answer within 2 s")
    assert event == EraDetected(Era.LEGACY, "no answer within 2 s")
    (init,) = session.take_outgoing()
    assert isinstance(init, Request) and init.method == "initialize"
    error = {"code": -32601, "message": "Method not found"}
    late = server_says(session, {"jsonrpc": "2.0", "id": request.id, "error": error})
    assert late == [LateResponse(request.id)]
    with pytest.raises(ProtocolError, match="only possible while probing"):
        session.fall_back_to_legacy("again")


def test_an_unsupported_version_answer_retries_with_a_listed_version_and_stays_modern() -> None:
    session = ClientSession(era=None)
    request = probe(session)
    error = {
        "code": -32022,
        "message": "Unsupported protocol version",
        "data": {"supported": [LATEST_VERSION, "2025-11-25"], "requested": LATEST_VERSION},
    }
    (event,) = server_says(session, {"jsonrpc": "2.0", "id": request.id, "error": error})
    assert isinstance(event, RequestResent) and event.old_id == request.id
    (again,) = session.take_outgoing()
    assert isinstance(again, Request) and again.id == event.new_id != request.id
    assert meta_of(again)[PROTOCOL_VERSION_KEY] == LATEST_VERSION
    # A second refusal of the same version ends it: no endless loop.
    (failed,) = server_says(session, {"jsonrpc": "2.0", "id": again.id, "error": error})
    assert isinstance(failed, HandshakeFailed) and session.take_outgoing() == []
    assert isinstance(failed.error, UnsupportedProtocolVersionError)
    assert failed.error.supported == (LATEST_VERSION, "2025-11-25")


def test_a_server_with_no_modern_version_in_common_fails_to_open() -> None:
    session = ClientSession(era=Era.MODERN)
    request = probe(session)
    result = discover_result(["2099-01-01"])
    (event,) = server_says(session, {"jsonrpc": "2.0", "id": request.id, "result": result})
    assert isinstance(event, HandshakeFailed)
    assert isinstance(event.error, VersionNegotiationError)
    assert "2099-01-01" in str(event.error)


def test_a_pinned_modern_era_does_not_fall_back() -> None:
    session = ClientSession(era=Era.MODERN)
    request = probe(session)
    assert not session.probing
    error = {"code": -32601, "message": "Method not found"}
    (event,) = server_says(session, {"jsonrpc": "2.0", "id": request.id, "error": error})
    assert isinstance(event, HandshakeFailed) and isinstance(event.error, McpError)


@pytest.mark.parametrize(
    ("status", "body", "era"),
    [
        (400, b"", Era.LEGACY),
        (400, b"Bad Request: No valid session ID provided", Era.LEGACY),
        (400, b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"x"}}', Era.LEGACY),
        (405, b"Method Not Allowed", Era.LEGACY),
        (400, b'{"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"x"}}', Era.MODERN),
        (400, b'{"jsonrpc":"2.0","id":1,"error":{"code":-32021,"message":"x"}}', Era.MODERN),
        (400, '{"jsonrpc":"2.0","id":1,"error":{"code":-32020,"message":"x"}}', Era.MODERN),
        (400, b'{"jsonrpc":"2.0","id":1,"error":{"code":true,"message":"x"}}', Era.LEGACY),
        (400, b"[1, 2]", Era.LEGACY),
    ],
)
def test_http_rejections_are_classified_by_their_body(status: int, body: Any, era: Era) -> None:
    assert era_of_http_rejection(status, body) is era


@given(st.integers(min_value=-(2**40), max_value=2**40))
def test_only_the_modern_codes_identify_a_modern_server(code: int) -> None:
    assert (era_of_probe_error(code) is Era.MODERN) == (code in (-32020, -32021, -32022))


# -- requests


def test_every_modern_request_carries_meta_and_keeps_the_callers_meta() -> None:
    session = modern(log_level="warning")
    call = session.send_request(
        "tools/call", {"name": "t", "arguments": {}, "_meta": {"progressToken": 7}}
    )
    meta = meta_of(call)
    assert meta["progressToken"] == 7
    assert meta[PROTOCOL_VERSION_KEY] == LATEST_VERSION
    assert meta[CLIENT_CAPABILITIES_KEY] == CAPS
    assert meta[LOG_LEVEL_KEY] == "warning"
    assert session.set_log_level("debug") is None
    assert meta_of(session.send_request("tools/list"))[LOG_LEVEL_KEY] == "debug"
    with pytest.raises(ConfigError, match="loud"):
        session.set_log_level("loud")


@pytest.mark.parametrize("method", ["ping", "logging/setLevel", "resources/subscribe"])
def test_methods_the_modern_era_dropped_are_refused(method: str) -> None:
    with pytest.raises(ProtocolError, match="does not exist"):
        modern().send_request(method)


@pytest.mark.parametrize("result_type", [None, "complete"])
def test_a_missing_or_complete_result_type_is_a_final_answer(result_type: str | None) -> None:
    session = modern()
    call = session.send_request("tools/call", {"name": "t"}, context="slot")
    result: dict[str, Any] = {"content": [{"type": "text", "text": "ok"}]}
    if result_type:
        result["resultType"] = result_type
    (event,) = server_says(session, {"jsonrpc": "2.0", "id": call.id, "result": result})
    assert isinstance(event, ResponseReceived) and event.context == "slot"
    assert session.take_outgoing() == []


@pytest.mark.parametrize("result_type", ["task", "partial", 3])
def test_an_unknown_result_type_fails_the_request(result_type: Any) -> None:
    session = modern()
    call = session.send_request("tools/list", context="slot")
    result = {"resultType": result_type, "tools": []}
    (event,) = server_says(session, {"jsonrpc": "2.0", "id": call.id, "result": result})
    assert isinstance(event, ErrorReceived) and isinstance(event.error, ProtocolError)
    assert event.context == "slot" and "resultType" in str(event.error)


def test_a_result_type_an_extension_declared_is_passed_on() -> None:
    session = modern(result_types=frozenset({"task"}))
    call = session.send_request("tools/call", {"name": "t"})
    result = {"resultType": "task", "task": {"taskId": "1"}}
    (event,) = server_says(session, {"jsonrpc": "2.0", "id": call.id, "result": result})
    assert isinstance(event, ResponseReceived) and event.result["task"] == {"taskId": "1"}


@pytest.mark.parametrize(
    ("code", "data", "cls"),
    [
        (-32020, None, HeaderMismatchError),
        (
            -32021,
            {"requiredCapabilities": {"elicitation": {}}},
            MissingRequiredClientCapabilityError,
        ),
        (
            -32022,
            {"supported": ["2099-01-01"], "requested": LATEST_VERSION},
            UnsupportedProtocolVersionError,
        ),
    ],
)
def test_modern_errors_are_typed_with_their_data(code: int, data: Any, cls: type) -> None:
    session = modern()
    call = session.send_request("tools/call", {"name": "t"})
    error = {"code": code, "message": "no", **({"data": data} if data else {})}
    (event,) = server_says(session, {"jsonrpc": "2.0", "id": call.id, "error": error})
    assert isinstance(event, ErrorReceived) and type(event.error) is cls
    received = event.error
    if isinstance(received, MissingRequiredClientCapabilityError):
        assert received.required_capabilities == {"elicitation": {}}
    if isinstance(received, UnsupportedProtocolVersionError):
        assert received.supported == ("2099-01-01",) and received.requested == LATEST_VERSION
    assert isinstance(received, McpError)
    located = received.located(method="tools/call", server="s")
    assert type(located) is cls and located.server == "s"


def test_a_request_refused_for_its_version_is_sent_once_more_under_a_new_id() -> None:
    session = modern()
    call = session.send_request("tools/list", context="slot")
    error = {"code": -32022, "message": "no", "data": {"supported": [LATEST_VERSION]}}
    (event,) = server_says(session, {"jsonrpc": "2.0", "id": call.id, "error": error})
    assert isinstance(event, RequestResent)
    (again,) = session.take_outgoing()
    assert isinstance(again, Request) and again.id != call.id and again.method == "tools/list"
    (final,) = server_says(session, {"jsonrpc": "2.0", "id": again.id, "error": error})
    assert isinstance(final, ErrorReceived) and final.request_id == call.id
    assert isinstance(final.error, UnsupportedProtocolVersionError) and final.context == "slot"


# -- multi round-trip requests

ELICIT = {
    "method": "elicitation/create",
    "params": {"message": "who?", "requestedSchema": {"type": "object", "properties": {}}},
}
ROOTS = {"method": "roots/list"}


def input_required(call: Request, requests: Any = None, state: Any = None) -> dict[str, Any]:
    result: dict[str, Any] = {"resultType": "input_required"}
    if requests is not None:
        result["inputRequests"] = requests
    if state is not None:
        result["requestState"] = state
    return {"jsonrpc": "2.0", "id": call.id, "result": result}


@given(state=st.text(max_size=200))
def test_input_is_asked_of_the_handlers_and_the_request_resent_with_state_unchanged(
    state: str,
) -> None:
    session = modern()
    call = session.send_request("tools/call", {"name": "t", "arguments": {"a": 1}}, context="c")
    events = server_says(session, input_required(call, {"who": ELICIT, "where": ROOTS}, state))
    assert [type(e) for e in events] == [RequestReceived, RequestReceived]
    asked = {e.request.method: e.request for e in events}
    assert asked["elicitation/create"].params == ELICIT["params"]
    assert session.pending_count == 1
    assert session.respond(asked["roots/list"].id, {"roots": []}) == []
    (resent,) = session.respond(asked["elicitation/create"].id, {"action": "decline"})
    assert isinstance(resent, RequestResent) and resent.old_id == call.id
    (again,) = session.take_outgoing()
    assert isinstance(again, Request) and again.id == resent.new_id != call.id
    assert again.params is not None
    assert again.params["requestState"] == state
    assert again.params["inputResponses"] == {"who": {"action": "decline"}, "where": {"roots": []}}
    assert again.params["arguments"] == {"a": 1} and meta_of(again)[PROTOCOL_VERSION_KEY]
    # The wire form keeps the state byte for byte.
    assert json.loads(jsonrpc.encode(again))["params"]["requestState"] == state
    done = {"resultType": "complete", "content": []}
    (event,) = server_says(session, {"jsonrpc": "2.0", "id": again.id, "result": done})
    assert isinstance(event, ResponseReceived) and event.context == "c"
    assert event.request_id == call.id and session.pending_count == 0


def test_without_request_state_the_retry_carries_none_and_other_requests_carry_nothing() -> None:
    session = modern()
    call = session.send_request("tools/call", {"name": "t"})
    other = session.send_request("tools/call", {"name": "u"})
    (asked,) = server_says(session, input_required(call, {"k": ELICIT}))
    session.respond(asked.request.id, {"action": "accept", "content": {}})
    (again,) = session.take_outgoing()
    assert isinstance(again, Request) and again.params is not None
    assert "requestState" not in again.params
    assert other.params is not None and "inputResponses" not in other.params


def test_state_alone_resends_at_once() -> None:
    session = modern()
    call = session.send_request("resources/read", {"uri": "file:///x"})
    (event,) = server_says(session, input_required(call, state="opaque"))
    assert isinstance(event, RequestResent)
    (again,) = session.take_outgoing()
    assert again.params == {  # type: ignore[union-attr]
        "uri": "file:///x",
        "requestState": "opaque",
        "_meta": meta_of(again),  # type: ignore[arg-type]
    }


def test_cancelling_by_the_first_id_cancels_the_resent_request() -> None:
    session = modern()
    call = session.send_request("prompts/get", {"name": "p"}, context="c")
    server_says(session, input_required(call, state="s"))
    (again,) = session.take_outgoing()
    assert session.cancel(call.id, "deadline") == "c"
    (cancelled,) = session.take_outgoing()
    assert isinstance(cancelled, Notification) and isinstance(again, Request)
    assert cancelled.params == {"requestId": again.id, "reason": "deadline"}
    late = server_says(session, {"jsonrpc": "2.0", "id": again.id, "result": {"messages": []}})
    assert late == [LateResponse(again.id)]


def test_cancelling_while_input_is_being_gathered_drops_the_round() -> None:
    session = modern()
    call = session.send_request("tools/call", {"name": "t"}, context="c")
    (asked,) = server_says(session, input_required(call, {"k": ELICIT}))
    assert session.cancel(call.id) == "c"
    assert session.respond(asked.request.id, {"action": "cancel"}) == []
    assert session.take_outgoing() == [] and session.pending_count == 0


def test_input_the_client_cannot_give_fails_the_request() -> None:
    session = modern(caps={})
    call = session.send_request("tools/call", {"name": "t"}, context="c")
    (event,) = server_says(session, input_required(call, {"k": ELICIT}))
    assert isinstance(event, ErrorReceived) and "elicitation/create" in str(event.error)
    assert event.context == "c" and session.take_outgoing() == []


@pytest.mark.parametrize(
    "bad",
    [
        {"resultType": "input_required"},
        {"resultType": "input_required", "inputRequests": []},
        {"resultType": "input_required", "inputRequests": {"k": {"params": {}}}},
        {"resultType": "input_required", "requestState": 5},
    ],
)
def test_a_malformed_input_required_result_fails_the_request(bad: dict[str, Any]) -> None:
    session = modern()
    call = session.send_request("tools/call", {"name": "t"})
    (event,) = server_says(session, {"jsonrpc": "2.0", "id": call.id, "result": bad})
    assert isinstance(event, ErrorReceived) and isinstance(event.error, ProtocolError)


def test_input_required_is_refused_for_requests_that_may_not_have_it() -> None:
    session = modern()
    call = session.send_request("tools/list")
    (event,) = server_says(session, input_required(call, state="s"))
    assert isinstance(event, ErrorReceived) and "may not answer tools/list" in str(event.error)


def test_a_handler_that_fails_fails_the_request() -> None:
    session = modern()
    call = session.send_request("tools/call", {"name": "t"}, context="c")
    (asked,) = server_says(session, input_required(call, {"k": ELICIT}))
    (event,) = session.respond_error(asked.request.id, -32603, "boom")
    assert isinstance(event, ErrorReceived) and event.request_id == call.id
    assert "boom" in str(event.error) and session.pending_count == 0


def test_a_server_that_asks_for_ever_is_stopped() -> None:
    session = modern()
    call = session.send_request("tools/call", {"name": "t"})
    current: Request = call
    for _ in range(40):
        events = server_says(session, input_required(current, state="again"))
        if isinstance(events[0], ErrorReceived):
            assert "times" in str(events[0].error)
            return
        (current,) = session.take_outgoing()  # type: ignore[assignment]
    raise AssertionError("the session kept resending")


# -- subscriptions/listen


def test_listen_streams_deliver_the_same_events_as_legacy_notifications() -> None:
    session = modern()
    wanted = SubscriptionFilter(tools_list_changed=True, resource_subscriptions=("file:///a",))
    request = session.listen(wanted, context="sub")
    assert request.params is not None
    assert request.params["notifications"] == {
        "toolsListChanged": True,
        "resourceSubscriptions": ["file:///a"],
    }
    meta = {SUBSCRIPTION_ID_KEY: request.id}
    ack = {"_meta": meta, "notifications": {"toolsListChanged": True}}
    (event,) = server_says(
        session,
        {"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged", "params": ack},
    )
    assert event == SubscriptionAcknowledged(
        request.id, SubscriptionFilter(tools_list_changed=True)
    )
    (changed,) = server_says(
        session,
        {"jsonrpc": "2.0", "method": "notifications/tools/list_changed", "params": {"_meta": meta}},
    )
    assert changed == ListChanged("tools", request.id)
    updated = {"_meta": meta, "uri": "file:///a"}
    (event,) = server_says(
        session, {"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": updated}
    )
    assert event == ResourceUpdated("file:///a", request.id)
    assert session.subscriptions == {request.id: wanted}
    closed = {"resultType": "complete", "_meta": meta}
    (ended,) = server_says(session, {"jsonrpc": "2.0", "id": request.id, "result": closed})
    assert ended == SubscriptionEnded(request.id, "sub")
    assert session.subscriptions == {}


def test_listen_does_not_exist_in_the_legacy_era() -> None:
    session = ClientSession()
    with pytest.raises(ProtocolError, match="modern era"):
        session.listen(SubscriptionFilter(tools_list_changed=True))


# -- caching hints


@pytest.mark.parametrize(
    ("result", "hints"),
    [
        ({}, CacheHints(0, None)),
        ({"ttlMs": -5, "cacheScope": "public"}, CacheHints(0, "public")),
        ({"ttlMs": 1500, "cacheScope": "private"}, CacheHints(1500, "private")),
        ({"ttlMs": "soon", "cacheScope": "everyone"}, CacheHints(0, None)),
        ({"ttlMs": True}, CacheHints(0, None)),
    ],
)
def test_cache_hints(result: dict[str, Any], hints: CacheHints) -> None:
    assert CacheHints.of(result) == hints


def test_freshness_follows_the_ttl() -> None:
    hints = CacheHints(1500, "public")
    assert hints.fresh(10.0, 11.4) and not hints.fresh(10.0, 11.5)
    assert not CacheHints().fresh(10.0, 10.0)


def test_a_modern_version_that_is_not_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="2025-11-25"):
        ClientSession(era=Era.MODERN, modern_version="2025-11-25")


# -- the specification's schema and examples


def _modern_messages() -> list[jsonrpc.Message]:
    session = ClientSession(era=None, capabilities=CAPS, log_level="info")
    first = probe(session)
    sent: list[jsonrpc.Message] = [first]
    server_says(session, {"jsonrpc": "2.0", "id": first.id, "result": discover_result()})
    call = session.send_request(
        "tools/call", {"name": "t", "arguments": {"a": 1}, "_meta": {"progressToken": "p"}}
    )
    sent += [
        call,
        session.send_request("tools/list", {"cursor": "c"}),
        session.send_request("resources/list"),
        session.send_request("resources/templates/list"),
        session.send_request("resources/read", {"uri": "file:///x"}),
        session.send_request("prompts/list"),
        session.send_request("prompts/get", {"name": "p", "arguments": {"a": "b"}}),
        session.send_request(
            "completion/complete",
            {"ref": {"type": "ref/prompt", "name": "p"}, "argument": {"name": "a", "value": ""}},
        ),
        session.listen(SubscriptionFilter(True, True, True, ("file:///a",))),
    ]
    (asked,) = server_says(session, input_required(call, {"k": ELICIT}, "s"))
    session.respond(asked.request.id, {"action": "accept", "content": {"n": "x"}})
    sent += session.take_outgoing()
    resent = sent[-1]
    assert isinstance(resent, Request)
    session.cancel(resent.id, "bored")
    sent += session.take_outgoing()
    return sent


def test_outgoing_modern_messages_validate_against_the_schema(mcp_spec: Path) -> None:
    validators = _validators(mcp_spec, "2026-07-28")
    messages = _modern_messages()
    assert len(messages) == 12
    for message in messages:
        wire = json.loads(jsonrpc.encode(message))
        kind = "ClientRequest" if isinstance(message, Request) else "ClientNotification"
        for name in ("JSONRPCMessage", kind):
            problems = [e.message[:200] for e in validators[name].iter_errors(wire)]
            assert not problems, (name, wire, problems)


def test_the_modern_schema_check_catches_a_request_without_meta(mcp_spec: Path) -> None:
    validators = _validators(mcp_spec, "2026-07-28")
    bare = Request(1, "tools/call", {"name": "t", "arguments": {}})
    assert list(validators["ClientRequest"].iter_errors(bare.to_dict()))


def test_a_server_that_refuses_initialize_for_a_modern_version_is_opened_modern() -> None:
    session = ClientSession(era=None)
    probe(session)
    session.fall_back_to_legacy("slow to start")
    (init,) = session.take_outgoing()
    assert isinstance(init, Request) and init.method == "initialize"
    error = {
        "code": -32022,
        "message": "serving 2026-07-28",
        "data": {"supported": [LATEST_VERSION]},
    }
    (event,) = server_says(session, {"jsonrpc": "2.0", "id": init.id, "error": error})
    assert isinstance(event, RequestResent)
    (again,) = session.take_outgoing()
    assert isinstance(again, Request) and again.method == "server/discover"
    (opened,) = server_says(
        session, {"jsonrpc": "2.0", "id": again.id, "result": discover_result()}
    )
    assert isinstance(opened, HandshakeComplete) and session.era is Era.MODERN
