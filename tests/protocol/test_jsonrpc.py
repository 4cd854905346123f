"""JSON-RPC 2.0 parsing and encoding, without any IO."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opex_trio.errors import ConfigError, ProtocolError
from opex_trio.protocol import jsonrpc
from opex_trio.protocol.jsonrpc import (
    ErrorObject,
    ErrorResponse,
    Notification,
    Request,
    Response,
    decode,
    encode,
    find_id,
    parse_message,
)


def test_parses_each_kind_of_message() -> None:
    assert parse_message({"jsonrpc": "2.0", "id": 1, "method": "ping"}) == Request(1, "ping")
    assert parse_message({"jsonrpc": "2.0", "id": "a", "method": "x", "params": {"k": 1}}) == (
        Request("a", "x", {"k": 1})
    )
    assert parse_message({"jsonrpc": "2.0", "method": "n"}) == Notification("n")
    assert parse_message({"jsonrpc": "2.0", "id": 7, "result": {}}) == Response(7, {})
    err = parse_message(
        {"jsonrpc": "2.0", "id": 7, "error": {"code": -32601, "message": "nope", "data": [1]}}
    )
    assert err == ErrorResponse(7, ErrorObject(-32601, "nope", [1]))
    assert parse_message(
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "bad"}}
    ) == ErrorResponse(None, ErrorObject(-32700, "bad"))


@pytest.mark.parametrize(
    ("obj", "fragment", "request_id"),
    [
        ([], "must be an object", None),
        ({"id": 1, "method": "x"}, "'jsonrpc' must be", 1),
        ({"jsonrpc": "1.0", "id": 3, "method": "x"}, "'jsonrpc' must be", 3),
        ({"jsonrpc": "2.0", "id": 1.5, "method": "x"}, "'id' must be a string or an integer", None),
        ({"jsonrpc": "2.0", "id": True, "method": "x"}, "'id' must be", None),
        ({"jsonrpc": "2.0", "id": 4, "method": 5}, "'method' must be a string", 4),
        (
            {"jsonrpc": "2.0", "id": 4, "method": "x", "params": [1]},
            "'params' must be an object",
            4,
        ),
        ({"jsonrpc": "2.0", "id": None, "method": "x"}, "null id", None),
        ({"jsonrpc": "2.0", "id": 2, "result": 3}, "'result' must be an object", 2),
        ({"jsonrpc": "2.0", "result": {}}, "has no id", None),
        ({"jsonrpc": "2.0", "id": 2, "result": {}, "error": {}}, "both", 2),
        ({"jsonrpc": "2.0", "id": 2, "error": "x"}, "'error' must be an object", 2),
        ({"jsonrpc": "2.0", "id": 2, "error": {"code": "1", "message": "m"}}, "code", 2),
        ({"jsonrpc": "2.0", "id": 2, "error": {"code": 1}}, "message", 2),
        ({"jsonrpc": "2.0", "id": 9}, "not a request, notification or response", 9),
    ],
)
def test_invalid_messages_raise_one_precise_error(obj: Any, fragment: str, request_id: Any) -> None:
    with pytest.raises(ProtocolError, match=fragment) as info:
        parse_message(obj)
    assert info.value.request_id == request_id
    assert info.value.code == jsonrpc.INVALID_REQUEST


def test_not_json_is_a_parse_error() -> None:
    with pytest.raises(ProtocolError) as info:
        decode(b"{not json")
    assert info.value.code == jsonrpc.PARSE_ERROR
    assert "not valid JSON" in str(info.value)
    with pytest.raises(ProtocolError) as info:
        decode(b"\xff\xfe\x00")
    assert info.value.code == jsonrpc.PARSE_ERROR


def test_batches_only_where_allowed_and_bad_elements_stay_in_place() -> None:
    data = json.dumps(
        [{"jsonrpc": "2.0", "id": 1, "result": {}}, 5, {"jsonrpc": "2.0", "method": "n"}]
    )
    with pytest.raises(ProtocolError, match="batches are not allowed"):
        decode(data)
    out = decode(data, allow_batch=True)
    assert out[0] == Response(1, {})
    assert isinstance(out[1], ProtocolError)
    assert out[2] == Notification("n")
    with pytest.raises(ProtocolError, match="empty"):
        decode("[]", allow_batch=True)


def test_encode_is_compact_utf8_without_newline() -> None:
    data = encode(Request(1, "tools/call", {"name": "é", "arguments": {}}))
    assert (
        data
        == '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"é","arguments":{}}}'.encode()
    )
    assert b"\n" not in encode(Notification("n", {"text": "a\nb"}))


def test_encode_rejects_what_json_cannot_carry_naming_the_message() -> None:
    with pytest.raises(ConfigError, match="tools/call"):
        encode(Request(1, "tools/call", {"x": float("nan")}))
    with pytest.raises(ConfigError, match="tools/call"):
        encode(Request(1, "tools/call", {"x": object()}))


def test_encode_names_a_cycle_and_goes_on_encoding_after_a_failure() -> None:
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    with pytest.raises(ConfigError, match=r"tools/call.*Circular reference"):
        encode(Request(1, "tools/call", cycle))
    with pytest.raises(ConfigError, match="Out of range float"):
        encode(Request(2, "tools/call", {"x": float("inf")}))
    # Nothing of the failed calls is left behind to trip the next one.
    shared = {"a": [1, 2.5, None, True]}
    assert encode(Request(3, "m", {"p": shared, "q": shared})) == (
        b'{"jsonrpc":"2.0","id":3,"method":"m","params":'
        b'{"p":{"a":[1,2.5,null,true]},"q":{"a":[1,2.5,null,true]}}}'
    )


def test_decode_takes_surrounding_whitespace_and_refuses_anything_after_the_value() -> None:
    assert decode(b' {"jsonrpc":"2.0","id":1,"result":{}} \t') == [Response(1, {})]
    with pytest.raises(ProtocolError, match="Extra data") as info:
        decode(b'{"jsonrpc":"2.0","id":1,"result":{}}{"jsonrpc":"2.0"}')
    assert info.value.code == jsonrpc.PARSE_ERROR
    with pytest.raises(ProtocolError, match="not valid JSON"):
        decode(b"")


def test_id_allocator_counts_up() -> None:
    ids = jsonrpc.IdAllocator()
    assert [ids(), ids(), ids()] == [1, 2, 3]


def test_find_id_reads_only_the_envelope() -> None:
    assert find_id(b'{"jsonrpc":"2.0","id":42,"result":{"content":') == 42
    assert find_id(b'{"id":"abc","jsonrpc":"2.0","result":') == "abc"
    assert find_id(b'{"jsonrpc":"2.0","result":{"id":5') is None
    assert find_id(b"garbage") is None


# -- properties

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
ids = st.integers(min_value=-(2**53), max_value=2**53) | st.text(max_size=20)
params = st.none() | st.dictionaries(st.text(max_size=10), json_values, max_size=4)
messages = st.one_of(
    st.builds(Request, ids, st.text(min_size=1, max_size=30), params),
    st.builds(Notification, st.text(min_size=1, max_size=30), params),
    st.builds(Response, ids, st.dictionaries(st.text(max_size=10), json_values, max_size=4)),
    st.builds(
        ErrorResponse,
        st.none() | ids,
        st.builds(ErrorObject, st.integers(-(2**31), 2**31), st.text(), json_values),
    ),
)


@pytest.mark.fuzz
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_the_protocol_error(data: bytes) -> None:
    try:
        out = decode(data, allow_batch=True)
    except ProtocolError:
        return
    assert all(
        isinstance(m, ProtocolError | Request | Notification | Response | ErrorResponse)
        for m in out
    )


@pytest.mark.fuzz
@given(json_values)
def test_any_json_value_parses_or_raises_the_protocol_error(value: Any) -> None:
    try:
        out = decode(json.dumps(value), allow_batch=False)
    except ProtocolError:
        return
    assert len(out) == 1


@pytest.mark.fuzz
@given(messages)
def test_encode_then_decode_round_trips(message: jsonrpc.Message) -> None:
    assert decode(encode(message)) == [message]


@pytest.mark.fuzz
@given(st.lists(messages, min_size=1, max_size=5))
def test_batches_round_trip(batch: list[jsonrpc.Message]) -> None:
    assert decode(jsonrpc.encode_many(batch), allow_batch=True) == batch


@given(
    st.dictionaries(
        st.text(max_size=8).filter(lambda k: k != "_meta"),
        st.one_of(st.integers(), st.text(max_size=8), st.none()),
        max_size=4,
    )
)
def test_a_pre_encoded_meta_encodes_as_the_same_json(params: dict[str, Any]) -> None:
    members = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "ü": {"a": [1]}}
    request = jsonrpc.Request(7, "tools/call", {**params, "_meta": jsonrpc.PreEncoded(members)})
    plain = jsonrpc.Request(7, "tools/call", {**params, "_meta": members})
    assert json.loads(jsonrpc.encode(request)) == json.loads(jsonrpc.encode(plain))
    assert json.loads(jsonrpc.encode(request))["params"]["_meta"] == members
