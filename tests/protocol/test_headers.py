"""Headers mirrored from the body of a Streamable HTTP request (SEP-2243)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opex_trio.protocol.headers import (
    encode_header_value,
    param_headers,
    standard_headers,
    tool_header_problem,
)


@pytest.mark.parametrize(
    ("value", "header"),
    [
        ("us-west1", "us-west1"),
        ("Hello, 世界", "=?base64?SGVsbG8sIOS4lueVjA==?="),
        (" padded ", "=?base64?IHBhZGRlZCA=?="),
        ("line1\nline2", "=?base64?bGluZTEKbGluZTI=?="),
        ("=?base64?literal?=", "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="),
        ("us west 1", "us west 1"),
        (42, "42"),
        (-7, "-7"),
        (True, "true"),
        (False, "false"),
        ("", ""),
    ],
)
def test_values_are_encoded_as_the_specification_shows(value: Any, header: str) -> None:
    assert encode_header_value(value) == header


@given(st.text(max_size=60))
def test_every_value_becomes_a_valid_header_that_decodes_back(text: str) -> None:
    header = encode_header_value(text)
    assert all(" " <= ch <= "~" for ch in header)
    if header.startswith("=?base64?") and header.endswith("?="):
        assert base64.b64decode(header[9:-2]).decode("utf-8") == text
    else:
        assert header == text


def test_standard_headers_name_the_method_and_what_it_acts_on() -> None:
    assert standard_headers("tools/list", {}) == {"Mcp-Method": "tools/list"}
    assert standard_headers("tools/call", {"name": "get_weather"}) == {
        "Mcp-Method": "tools/call",
        "Mcp-Name": "get_weather",
    }
    assert standard_headers("resources/read", {"uri": "file:///ü"})["Mcp-Name"].startswith(
        "=?base64?"
    )
    assert standard_headers("prompts/get", {"name": "p"})["Mcp-Name"] == "p"
    for method in ("tasks/get", "tasks/update", "tasks/cancel"):
        assert standard_headers(method, {"taskId": "t-1"}) == {
            "Mcp-Method": method,
            "Mcp-Name": "t-1",
        }


def _schema(prop: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"value": prop, **more}}


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        (_schema({"type": "string", "x-mcp-header": ""}), "empty"),
        (_schema({"type": "object", "x-mcp-header": "Data"}), "primitive"),
        (_schema({"type": "array", "items": {}, "x-mcp-header": "Items"}), "primitive"),
        (_schema({"type": "null", "x-mcp-header": "Nil"}), "primitive"),
        (_schema({"type": "number", "x-mcp-header": "Score"}), "primitive"),
        (_schema({"type": "string", "x-mcp-header": "My Region"}), "token"),
        (_schema({"type": "string", "x-mcp-header": "Region:Primary"}), "token"),
        (_schema({"type": "string", "x-mcp-header": "Région"}), "token"),
        (_schema({"type": "string", "x-mcp-header": "Region\t1"}), "token"),
        (
            _schema(
                {"type": "string", "x-mcp-header": "MyField"},
                other={"type": "string", "x-mcp-header": "myfield"},
            ),
            "repeats",
        ),
        (
            {
                "type": "object",
                "properties": {
                    "list": {"type": "array", "items": {"type": "string", "x-mcp-header": "X"}}
                },
            },
            "reachable",
        ),
        (
            {
                "type": "object",
                "anyOf": [{"properties": {"a": {"type": "string", "x-mcp-header": "A"}}}],
            },
            "reachable",
        ),
    ],
)
def test_invalid_declarations_are_named(schema: dict[str, Any], reason: str) -> None:
    problem = tool_header_problem(schema)
    assert problem is not None and reason in problem


def test_valid_declarations_pass_and_mirror_present_values_only() -> None:
    schema = {
        "type": "object",
        "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "priority": {"type": "integer", "x-mcp-header": "Priority"},
            "verbose": {"type": "boolean", "x-mcp-header": "Verbose"},
            "nested": {
                "type": "object",
                "properties": {"zone": {"type": "string", "x-mcp-header": "Zone"}},
            },
            "query": {"type": "string"},
            "score": {"type": "number"},
        },
    }
    assert tool_header_problem(schema) is None
    arguments = {
        "region": "us-west1",
        "priority": 42,
        "verbose": None,
        "nested": {"zone": " a "},
        "query": "SELECT 1",
        "score": 3.5,
    }
    assert param_headers(schema, arguments) == {
        "Mcp-Param-Region": "us-west1",
        "Mcp-Param-Priority": "42",
        "Mcp-Param-Zone": "=?base64?IGEg?=",
    }
    assert param_headers(schema, {}) == {}
