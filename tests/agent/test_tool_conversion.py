"""Converting tools between the MCP and the OpenAI shapes, and the arguments sent back."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema
import pytest
from hypothesis import given

import opex_trio
from opex_trio.agent.tools import (
    TOOL_NAME_PATTERN,
    ToolIndex,
    mcp_tool_to_openai,
    openai_tool_to_mcp,
)
from opex_trio.errors import ConfigError
from opex_trio.protocol.types import Tool, ToolAnnotations
from opex_trio.testing.strategies import (
    tool_input_schemas,
    tool_names,
)

from .support import (
    OBJECT,
    PROPERTY_SETTINGS,
    tool,
)

# ----------------------------------------------------------------------------- conversion


def test_mcp_tool_to_openai() -> None:
    t = tool(
        "get_weather",
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
        description="Current weather",
    )
    assert mcp_tool_to_openai(t) == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "City name"}},
                "required": ["city"],
            },
        },
    }
    strict = mcp_tool_to_openai(t, name="weather", strict=True)["function"]
    assert strict["name"] == "weather"
    assert strict["strict"] is True
    assert strict["parameters"]["additionalProperties"] is False


def test_mcp_tool_to_openai_without_strict_when_impossible() -> None:
    t = tool("t", {"type": "object", "patternProperties": {"^x": {"type": "string"}}})
    function = mcp_tool_to_openai(t, strict=True)["function"]
    assert "strict" not in function
    assert function["parameters"]["patternProperties"] == {"^x": {"type": "string"}}


def test_description_falls_back_to_titles() -> None:
    assert mcp_tool_to_openai(tool("a", title="Title"))["function"]["description"] == "Title"
    with_annotations = tool("a", annotations=ToolAnnotations(title="From annotations"))
    assert mcp_tool_to_openai(with_annotations)["function"]["description"] == "From annotations"
    assert "description" not in mcp_tool_to_openai(tool("a"))["function"]
    both = tool("a", title="Title", description="Text")
    assert mcp_tool_to_openai(both)["function"]["description"] == "Text"


def test_mcp_tool_to_openai_errors_name_the_tool() -> None:
    with pytest.raises(ConfigError, match=r"'a\.b' is not valid"):
        mcp_tool_to_openai(tool("a.b"))
    with pytest.raises(ConfigError, match="tool 'n': the input schema has type 'string'"):
        mcp_tool_to_openai(tool("n", {"type": "string"}))


def test_openai_tool_to_mcp_forms() -> None:
    params = {"type": "object", "properties": {"q": {"type": "string"}}}
    nested = {
        "type": "function",
        "function": {"name": "s", "description": "d", "parameters": params},
    }
    flat = {"type": "function", "name": "s", "description": "d", "parameters": params}
    bare = {"name": "s", "description": "d", "parameters": params}
    for form in (nested, flat, bare):
        converted = openai_tool_to_mcp(form)
        assert converted == Tool(name="s", input_schema=params, description="d")
        assert converted.input_schema is not params
    assert openai_tool_to_mcp({"name": "n"}).input_schema == {"type": "object", "properties": {}}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([], "must be a dict"),
        ({"type": "web_search"}, "only function tools"),
        ({"type": "function", "function": "x"}, "'function' must be a dict"),
        ({"function": {"description": "d"}}, r"\(unnamed\): 'name' must be a non-empty string"),
        ({"name": ""}, "'name' must be a non-empty string"),
        ({"name": "a b"}, "'a b' is not valid"),
        ({"name": "n", "description": 3}, "tool 'n': 'description' must be a string"),
        ({"name": "n", "parameters": [1]}, "tool 'n': 'parameters' must be a JSON Schema object"),
    ],
)
def test_openai_tool_to_mcp_errors(bad: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        openai_tool_to_mcp(bad)


def test_custom_tool_strict_flag_overrides_the_index() -> None:
    loose = {"type": "object", "properties": {"x": {"type": "string", "minLength": 2}}}
    strict_ok = {"type": "object", "properties": {"x": {"type": "string"}}}
    index = ToolIndex(
        [
            (None, {"name": "a", "parameters": strict_ok, "strict": True}),
            (None, {"name": "b", "parameters": strict_ok, "strict": False}),
            (None, {"name": "c", "parameters": strict_ok}),
            ("s", tool("d", loose)),
        ],
        strict=False,
    )
    assert [ref.strict for ref in index.values()] == [True, False, False, False]
    with pytest.raises(ConfigError, match=r"'a' asks for strict mode.*minLength"):
        ToolIndex([(None, {"name": "a", "parameters": loose, "strict": True})])
    with pytest.raises(ConfigError, match="'strict' must be a boolean"):
        ToolIndex([(None, {"name": "a", "strict": "yes"})])
    strict_index = ToolIndex([("s", tool("d", loose)), ("s", tool("e", strict_ok))], strict=True)
    assert [ref.strict for ref in strict_index.values()] == [False, True]
    assert "strict" not in strict_index["d"].to_openai()["function"]
    assert strict_index["e"].to_openai()["function"]["strict"] is True


def test_call_arguments_drop_nulls_the_tool_would_reject() -> None:
    schema = {
        "type": "object",
        "properties": {
            "q": {"type": "string"},
            "limit": {"type": "integer"},
            "cursor": {"type": ["string", "null"]},
            "opts": {
                "type": "object",
                "properties": {"deep": {"type": "boolean"}, "level": {"enum": [1, 2]}},
            },
            "tags": {
                "type": "array",
                "items": {"type": "object", "properties": {"k": {"type": "string"}}},
            },
        },
        "required": ["q"],
    }
    index = ToolIndex([("s", tool("t", schema))], strict=True)
    ref = index["t"]
    assert ref.strict
    sent = {
        "q": "x",
        "limit": None,
        "cursor": None,
        "opts": {"deep": None, "level": None},
        "tags": [{"k": None}],
    }
    assert ref.call_arguments(sent) == {"q": "x", "cursor": None, "opts": {}, "tags": [{}]}
    assert jsonschema.Draft202012Validator(schema).is_valid(ref.call_arguments(sent))
    plain = ToolIndex([("s", tool("t", schema))])["t"]
    assert plain.call_arguments(sent) == sent
    assert plain.call_arguments(sent) is not sent


def test_to_openai_returns_fresh_dicts() -> None:
    ref = ToolIndex([("s", tool("t"))])["t"]
    first = ref.to_openai()
    first["function"]["parameters"]["properties"]["x"] = {}
    assert ref.to_openai()["function"]["parameters"] == {"type": "object", "properties": {}}


@pytest.mark.fuzz
@PROPERTY_SETTINGS
@given(tool_input_schemas(), tool_names())
def test_mcp_tool_to_openai_never_fails_on_object_schemas(
    schema: dict[str, Any], name: str
) -> None:
    index = ToolIndex([("s", Tool(name=name, input_schema=schema))], strict=True)
    for converted in index.openai_tools():
        function = converted["function"]
        assert TOOL_NAME_PATTERN.match(function["name"])
        jsonschema.Draft202012Validator.check_schema(function["parameters"])
        json.dumps(converted)


# The shape ``tools/list`` returns on the wire, as server-filesystem sends it.
WIRE_TOOL = {
    "name": "read_file",
    "title": "Read file",
    "description": "Read a file's text",
    "inputSchema": {
        "type": "object",
        "properties": {"path": {"type": "string"}},
        "required": ["path"],
        "additionalProperties": False,
        "$schema": "http://json-schema.org/draft-07/schema#",
    },
    "annotations": {"readOnlyHint": True},
    "x-vendor": "kept",
}


@pytest.mark.parametrize("strict", [False, True])
def test_mcp_tool_to_openai_takes_the_wire_dict_as_the_typed_tool(strict: bool) -> None:
    typed = Tool.from_dict(copy.deepcopy(WIRE_TOOL))
    from_dict = mcp_tool_to_openai(WIRE_TOOL, strict=strict)
    assert from_dict == mcp_tool_to_openai(typed, strict=strict)
    function = from_dict["function"]
    assert function["name"] == "read_file"
    assert function["description"] == "Read a file's text"
    assert "$schema" not in function["parameters"]
    assert function["parameters"]["required"] == ["path"]
    assert function.get("strict", False) is strict
    # A snake_case schema key, as Python code tends to write it, is read too.
    snake = {"name": "t", "input_schema": {"type": "object", "properties": {}}}
    assert mcp_tool_to_openai(snake)["function"]["parameters"] == OBJECT


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"name": "x"}, "tool 'x' is missing the required member 'inputSchema'"),
        ({"name": "x", "inputSchema": 3}, "tool 'x'.inputSchema must be an object"),
        ({"inputSchema": {}}, "missing the required member 'name'"),
        ({"name": "x", "inputSchema": {"type": "string"}}, "tool 'x': the input schema has type"),
        (42, "must be a Tool or a dict, got int"),
    ],
)
def test_a_wire_dict_that_is_no_tool_is_a_config_error(bad: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        mcp_tool_to_openai(bad)


def test_a_tool_index_takes_wire_dicts_from_servers() -> None:
    index = ToolIndex([("fs", WIRE_TOOL), ("other", copy.deepcopy(WIRE_TOOL))])
    assert sorted(index) == ["fs__read_file", "other__read_file"]
    assert index["fs__read_file"].tool == Tool.from_dict(copy.deepcopy(WIRE_TOOL))
    assert index["fs__read_file"].tool.read_only


def test_tool_is_exported_from_the_package() -> None:
    assert opex_trio.Tool is Tool
    assert "Tool" in opex_trio.__all__
