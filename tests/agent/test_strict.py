"""make_strict: normalized schemas in OpenAI strict mode, or a fallback."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st

from opex_trio.agent.tools import (
    ToolIndex,
    make_strict,
    normalize_schema,
)
from opex_trio.errors import ConfigError
from opex_trio.protocol.types import Tool
from opex_trio.testing.strategies import (
    strict_friendly_schemas,
    tool_input_schemas,
)

from .support import (
    PROPERTY_SETTINGS,
    accepts,
    draw_instances,
    fill_for_strict,
    schema_positions,
    validator_for,
)

# ----------------------------------------------------------------------------- strict: examples


def test_make_strict() -> None:
    schema = {
        "type": "object",
        "properties": {
            "q": {"type": "string", "format": "my-format", "default": "x", "description": "query"},
            "n": {"type": "integer", "minimum": 1},
            "mode": {"enum": ["a", "b"]},
            "kind": {"type": "string", "enum": ["x"]},
            "fixed": {"const": 3},
            "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "tags": {"type": "array", "items": {"type": "string", "format": "email"}},
            "sub": {"type": "object", "properties": {"z": {"type": "boolean"}}, "required": ["z"]},
            "odd": {"type": "string", "minimum": 3},
        },
        "required": ["q"],
    }
    assert make_strict(schema) == {
        "type": "object",
        "properties": {
            "q": {"type": "string", "description": "query"},
            "n": {"type": ["integer", "null"], "minimum": 1},
            "mode": {"enum": ["a", "b", None]},
            "kind": {"type": ["string", "null"], "enum": ["x", None]},
            "fixed": {"enum": [3, None]},
            "either": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
            "tags": {"type": ["array", "null"], "items": {"type": "string", "format": "email"}},
            "sub": {
                "type": ["object", "null"],
                "properties": {"z": {"type": "boolean"}},
                "required": ["z"],
                "additionalProperties": False,
            },
            "odd": {"type": ["string", "null"]},
        },
        "required": ["q", "n", "mode", "kind", "fixed", "either", "tags", "sub", "odd"],
        "additionalProperties": False,
    }


def test_nullable_forms() -> None:
    schema = {
        "type": "object",
        "properties": {
            "already": {"type": ["string", "null"]},
            "typed_any_of": {
                "type": "object",
                "anyOf": [{"type": "object", "properties": {}}],
                "description": "d",
            },
        },
    }
    out = make_strict(schema)
    assert out is not None
    assert out["properties"]["already"] == {"type": ["string", "null"]}
    assert out["properties"]["typed_any_of"] == {
        "description": "d",
        "anyOf": [
            {
                "type": "object",
                "anyOf": [
                    {
                        "type": "object",
                        "properties": {},
                        "required": [],
                        "additionalProperties": False,
                    }
                ],
                "properties": {},
                "required": [],
                "additionalProperties": False,
            },
            {"type": "null"},
        ],
    }


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "patternProperties": {"^a": {"type": "string"}}},
        {"type": "object", "additionalProperties": {"type": "string"}},
        {"type": "object", "properties": {"a": {"type": "string", "minLength": 1}}},
        {"type": "object", "properties": {"a": {"allOf": [{"type": "string"}]}}},
        {"type": "object", "properties": {"a": {"not": {"type": "string"}}}},
        {"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}]}}},
        {"type": "object", "properties": {"a": {"type": "array", "items": {}}}},
        {"type": "object", "properties": {"a": {}}},
        {"type": "object", "properties": {"a": True}},
        {"type": "object", "properties": {}, "required": ["ghost"]},
        {"type": "object", "properties": {}, "anyOf": [{"type": "object"}]},
        {"type": "object", "properties": {"a": {"type": "date"}}},
        {"type": "object", "properties": {"a": {"description": "no type"}}},
        {"type": "object", "properties": {"a": {"type": "string", "x-custom": 1}}},
        {
            "type": "object",
            "properties": {
                "a": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
            },
        },
        {"type": "object", "properties": {"a": {"enum": list(range(1001))}}},
    ],
)
def test_make_strict_falls_back(schema: dict[str, Any]) -> None:
    assert make_strict(schema) is None


def test_make_strict_limits() -> None:
    deep: dict[str, Any] = {"type": "object", "properties": {}}
    node = deep
    for _ in range(10):
        child: dict[str, Any] = {"type": "object", "properties": {}}
        node["properties"]["x"] = child
        node = child
    assert make_strict(deep) is None
    shallow = deep["properties"]["x"]
    assert make_strict(shallow) is not None
    many = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(5001)}}
    assert make_strict(many) is None


# ----------------------------------------------------------------------------- strict: properties


@pytest.mark.fuzz
@PROPERTY_SETTINGS
@given(st.one_of(tool_input_schemas(), strict_friendly_schemas()), st.data())
def test_strict_schema_accepts_what_a_strict_model_would_send(
    original: dict[str, Any], data: st.DataObject
) -> None:
    try:
        normalized = normalize_schema(original)
    except ConfigError:
        return
    strict = make_strict(normalized)
    if strict is None:
        event("strict: fell back")
        return
    event("strict: converted")
    jsonschema.Draft202012Validator.check_schema(strict)
    for node in schema_positions(strict):
        kinds = node.get("type")
        kinds = [kinds] if isinstance(kinds, str) else kinds or []
        assert kinds or node.keys() & {"anyOf", "enum", "const"}
        if "object" in kinds:
            assert node["additionalProperties"] is False
            assert node["required"] == list(node["properties"])
    original_validator = validator_for(original)
    strict_validator = jsonschema.Draft202012Validator(strict)
    ref = ToolIndex([("s", Tool(name="t", input_schema=original))], strict=True)["t"]
    assert ref.strict
    assert ref.parameters == strict
    for instance in draw_instances(data, original):
        if not (isinstance(instance, dict) and accepts(original_validator, instance)):
            continue
        sent = fill_for_strict(instance, strict)
        note(f"instance {instance!r}, sent {sent!r}")
        assert strict_validator.is_valid(sent)
        assert accepts(original_validator, ref.call_arguments(sent))


@pytest.mark.fuzz
@PROPERTY_SETTINGS
@given(strict_friendly_schemas())
def test_schemas_within_the_strict_subset_are_made_strict(original: dict[str, Any]) -> None:
    assert make_strict(normalize_schema(original)) is not None
