"""normalize_schema: any input schema as a self-contained object schema that loses nothing."""

from __future__ import annotations

import copy
import json
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
from opex_trio.testing.strategies import tool_input_schemas

from .support import (
    OBJECT,
    PROPERTY_SETTINGS,
    accepts,
    draw_instances,
    schema_positions,
    tool,
    validator_for,
)

# ----------------------------------------------------------------------------- normalize: examples


def test_refs_are_inlined_and_defs_dropped() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://example.com/s",
        "$comment": "x",
        "type": "object",
        "properties": {"p": {"$ref": "#/$defs/Point", "description": "where"}},
        "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "number"}}}},
    }
    assert normalize_schema(schema) == {
        "type": "object",
        "properties": {
            "p": {"type": "object", "properties": {"x": {"type": "number"}}, "description": "where"}
        },
    }


def test_recursive_refs_are_unrolled_then_left_open_with_their_description() -> None:
    schema = {
        "type": "object",
        "properties": {"root": {"$ref": "#/$defs/Node"}},
        "$defs": {
            "Node": {
                "type": "object",
                "description": "A tree node",
                "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
            }
        },
    }
    out = normalize_schema(schema, max_ref_depth=2)
    level1 = out["properties"]["root"]
    level2 = level1["properties"]["children"]["items"]
    assert level2["description"] == "A tree node"
    assert level2["properties"]["children"]["items"] == {"description": "A tree node"}
    assert "$ref" not in json.dumps(out)


def test_root_recursion() -> None:
    schema = {"type": "object", "properties": {"next": {"$ref": "#"}}}
    out = normalize_schema(schema, max_ref_depth=2)
    assert out == {
        "type": "object",
        "properties": {"next": {"type": "object", "properties": {"next": {}}}},
    }


def test_unresolvable_refs_become_open_schemas() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/$defs/Missing", "description": "gone"},
            "b": {"$ref": "https://example.com/other.json"},
            "c": {"$ref": "#anchor-nobody-has"},
        },
    }
    assert normalize_schema(schema)["properties"] == {
        "a": {"description": "gone"},
        "b": {},
        "c": {},
    }


def test_pointer_refs_with_escapes_and_anchors() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/$defs/a~1b"},
            "b": {"$ref": "#/$defs/sp%20ace"},
            "c": {"$ref": "#/properties/a"},
            "d": {"$ref": "#here"},
            "e": {"$ref": "item.json"},
        },
        "$defs": {
            "a/b": {"type": "integer"},
            "sp ace": {"type": "boolean"},
            "anchored": {"$anchor": "here", "type": "null"},
            "by-id": {"$id": "https://example.com/item.json", "type": "string"},
        },
        "$id": "https://example.com/root.json",
    }
    assert normalize_schema(schema)["properties"] == {
        "a": {"type": "integer"},
        "b": {"type": "boolean"},
        "c": {"type": "integer"},
        "d": {"type": "null"},
        "e": {"type": "string"},
    }


def test_refs_inside_an_embedded_resource_resolve_against_it() -> None:
    schema = {
        "type": "object",
        "properties": {"x": {"$ref": "https://example.com/inner"}},
        "$defs": {
            "inner": {
                "$id": "https://example.com/inner",
                "$ref": "#/$defs/leaf",
                "$defs": {"leaf": {"type": "integer", "minimum": 1}},
            },
            "leaf": {"type": "string"},
        },
    }
    assert normalize_schema(schema)["properties"]["x"] == {"type": "integer", "minimum": 1}


def test_draft7_ref_siblings_are_ignored_and_2020_ones_applied() -> None:
    body = {
        "type": "object",
        "properties": {"v": {"$ref": "#/definitions/S", "maxLength": 3, "description": "d"}},
        "definitions": {"S": {"type": "string"}},
    }
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", **body}
    assert normalize_schema(draft7)["properties"]["v"] == {"type": "string", "description": "d"}
    assert normalize_schema(body)["properties"]["v"] == {
        "type": "string",
        "maxLength": 3,
        "description": "d",
    }


def test_ref_siblings_that_interact_stay_apart() -> None:
    schema = {
        "type": "object",
        "properties": {
            "v": {
                "$ref": "#/$defs/O",
                "properties": {"b": {"type": "string"}},
                "unevaluatedProperties": False,
                "description": "d",
            }
        },
        "$defs": {"O": {"type": "object", "properties": {"a": {"type": "integer"}}}},
    }
    out = normalize_schema(schema)["properties"]["v"]
    assert out == {
        "description": "d",
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}},
            {"properties": {"b": {"type": "string"}}},
        ],
        "unevaluatedProperties": False,
    }
    validator = jsonschema.Draft202012Validator(out)
    assert validator.is_valid({"a": 1, "b": "x"})
    assert not validator.is_valid({"c": 1})


def test_older_draft_forms_are_rewritten() -> None:
    draft7 = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "pair": {
                "type": "array",
                "items": [{"type": "string"}, {"type": "integer"}],
                "additionalItems": False,
            },
            "list": {"type": "array", "items": {"type": "string"}, "additionalItems": False},
        },
        "dependencies": {"a": ["b"], "c": {"required": ["d"]}},
        "prefixItems": "unknown to draft-07, so dropped",
        "dependentRequired": {"x": ["y"]},
    }
    out = normalize_schema(draft7)
    assert out["properties"]["pair"] == {
        "type": "array",
        "prefixItems": [{"type": "string"}, {"type": "integer"}],
        "items": False,
    }
    assert out["properties"]["list"] == {"type": "array", "items": {"type": "string"}}
    assert out["dependentRequired"] == {"a": ["b"]}
    assert out["dependentSchemas"] == {"c": {"required": ["d"]}}
    assert "prefixItems" not in out


def test_draft4_exclusive_bounds() -> None:
    draft4 = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "id": "http://example.com/x",
        "type": "object",
        "properties": {
            "a": {"type": "number", "maximum": 5, "exclusiveMaximum": True},
            "b": {"type": "number", "minimum": 1, "exclusiveMinimum": False},
            "c": {"type": "number", "const": 3},
        },
    }
    assert normalize_schema(draft4)["properties"] == {
        "a": {"type": "number", "exclusiveMaximum": 5},
        "b": {"type": "number", "minimum": 1},
        "c": {"type": "number"},
    }


def test_missing_items_and_properties_are_added() -> None:
    schema = {
        "properties": {
            "a": {"type": "array"},
            "b": {"type": ["object", "null"]},
            "c": {"type": "array", "prefixItems": [{"type": "string"}]},
        }
    }
    assert normalize_schema(schema) == {
        "type": "object",
        "properties": {
            "a": {"type": "array", "items": {}},
            "b": {"type": ["object", "null"], "properties": {}},
            "c": {"type": "array", "prefixItems": [{"type": "string"}], "items": {}},
        },
    }


def test_boolean_schemas() -> None:
    assert normalize_schema(True) == OBJECT
    assert normalize_schema({}) == OBJECT
    schema = {
        "type": "object",
        "properties": {"yes": True, "no": False},
        "additionalProperties": False,
        "anyOf": [True],
    }
    assert normalize_schema(schema) == {
        "type": "object",
        "properties": {"yes": {}, "no": {"not": {}}},
        "additionalProperties": False,
        "anyOf": [{}],
    }


def test_top_level_is_narrowed_to_objects() -> None:
    assert normalize_schema({"type": ["object", "null"], "description": "d"}) == {
        "type": "object",
        "description": "d",
        "properties": {},
    }
    with pytest.raises(ConfigError, match="type 'string'"):
        normalize_schema({"type": "string"})
    with pytest.raises(ConfigError, match=r"type \['null', 'array'\]"):
        normalize_schema({"type": ["null", "array"]})
    with pytest.raises(ConfigError, match="accepts no arguments"):
        normalize_schema(False)
    with pytest.raises(ConfigError, match="must be a JSON object, got list"):
        normalize_schema([])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="type 'integer'"):
        normalize_schema({"$ref": "#/$defs/I", "$defs": {"I": {"type": "integer"}}})


def test_property_names_that_look_like_keywords_are_left_alone() -> None:
    schema = {
        "type": "object",
        "properties": {"$ref": {"type": "string"}, "$defs": {"type": "integer"}, "$schema": {}},
        "required": ["$ref"],
    }
    assert normalize_schema(schema) == schema


def test_unknown_keywords_and_descriptions_are_kept() -> None:
    schema = {
        "type": "object",
        "description": "Args",
        "x-vendor": {"$ref": "#/not/a/schema/position"},
        "properties": {"a": {"type": "string", "format": "email", "nullable": True}},
    }
    assert normalize_schema(schema) == schema


def test_loosening_under_not_and_oneof_never_makes_the_schema_stricter() -> None:
    recursive = {"$ref": "#/$defs/R"}
    schema = {
        "type": "object",
        "properties": {
            "n": {"not": recursive},
            "o": {"oneOf": [recursive, {"type": "integer"}]},
            "i": {"if": recursive, "then": {"type": "string"}, "else": {"type": "number"}},
            "c": {"type": "array", "contains": recursive, "maxContains": 1},
        },
        "$defs": {
            "R": {"type": "object", "properties": {"r": {"$ref": "#/$defs/R"}}, "required": ["r"]}
        },
    }
    out = normalize_schema(schema, max_ref_depth=1)
    props = out["properties"]
    assert props["n"] == {}
    assert "oneOf" not in props["o"]
    assert len(props["o"]["anyOf"]) == 2
    assert props["i"] == {"anyOf": [{"type": "string"}, {"type": "number"}]}
    assert "maxContains" not in props["c"]


def test_exact_subschemas_under_not_are_kept() -> None:
    schema = {"type": "object", "properties": {"n": {"not": {"type": "string"}}}}
    assert normalize_schema(schema) == schema


def test_dynamic_refs_are_dropped() -> None:
    schema = {"type": "object", "properties": {"a": {"$dynamicRef": "#meta", "type": "string"}}}
    assert normalize_schema(schema)["properties"]["a"] == {"type": "string"}


def test_exponential_reference_blowup_is_bounded() -> None:
    defs = {
        f"D{i}": {
            "type": "object",
            "properties": {"l": {"$ref": f"#/$defs/D{i + 1}"}, "r": {"$ref": f"#/$defs/D{i + 1}"}},
        }
        for i in range(30)
    }
    defs["D30"] = {"type": "string"}
    out = normalize_schema({"$ref": "#/$defs/D0", "$defs": defs})
    assert len(json.dumps(out)) < 5_000_000
    assert "$ref" not in json.dumps(out)


def test_deep_nesting_is_loosened_not_a_crash() -> None:
    schema: dict[str, Any] = {"type": "object"}
    node = schema
    for _ in range(5000):
        child: dict[str, Any] = {"type": "object"}
        node["properties"] = {"x": child}
        node = child
    out = normalize_schema(schema)
    assert out["type"] == "object"


def test_deeply_nested_values_are_a_config_error() -> None:
    value: Any = []
    for _ in range(5000):
        value = [value]
    with pytest.raises(ConfigError, match="nested too deeply"):
        normalize_schema({"type": "object", "default": value})


def test_input_is_not_modified() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/A"}, "b": {"type": "array"}},
        "$defs": {"A": {"type": "object"}},
    }
    before = copy.deepcopy(schema)
    normalize_schema(schema)
    make_strict(normalize_schema(schema))
    assert schema == before


# ----------------------------------------------------------------------------- normalize: properties


@pytest.mark.fuzz
@PROPERTY_SETTINGS
@given(tool_input_schemas(), st.data())
def test_normalized_schema_accepts_every_object_the_original_accepts(
    original: dict[str, Any], data: st.DataObject
) -> None:
    original_validator = validator_for(original)
    type(original_validator).check_schema(original)
    pristine = copy.deepcopy(original)
    try:
        converted = normalize_schema(original)
    except ConfigError:
        event("rejected: accepts no object")
        instances = draw_instances(data, original)
        assert not any(isinstance(i, dict) and accepts(original_validator, i) for i in instances)
        return
    assert original == pristine
    jsonschema.Draft202012Validator.check_schema(converted)
    assert converted["type"] == "object"
    assert isinstance(converted["properties"], dict)
    for node in schema_positions(converted):
        assert not node.keys() & {"$ref", "$defs", "definitions", "$schema", "$id", "$dynamicRef"}
        kinds = node.get("type")
        kinds = [kinds] if isinstance(kinds, str) else kinds or []
        if "array" in kinds:
            assert "items" in node
        if "object" in kinds:
            assert "properties" in node
    converted_validator = jsonschema.Draft202012Validator(converted)
    tested = 0
    for instance in draw_instances(data, original):
        if isinstance(instance, dict) and accepts(original_validator, instance):
            tested += 1
            note(f"instance: {instance!r}")
            assert converted_validator.is_valid(instance), (
                f"{instance!r} is accepted by the original but not by {converted!r}"
            )
    event(f"instances tested: {min(tested, 1)}")


@pytest.mark.fuzz
@PROPERTY_SETTINGS
@given(tool_input_schemas())
def test_normalize_is_idempotent(original: dict[str, Any]) -> None:
    try:
        once = normalize_schema(original)
    except ConfigError:
        return
    assert normalize_schema(once) == once


# ----------------------------------------------------------------------------- schemas as generators write them


def test_a_pydantic_style_schema() -> None:
    schema = {
        "$defs": {
            "Unit": {"enum": ["c", "f"], "title": "Unit", "type": "string"},
        },
        "properties": {
            "city": {"title": "City", "type": "string"},
            "unit": {"anyOf": [{"$ref": "#/$defs/Unit"}, {"type": "null"}], "default": None},
            "days": {"default": 1, "title": "Days", "type": "integer", "maximum": 7},
        },
        "required": ["city"],
        "title": "ForecastArgs",
        "type": "object",
    }
    normalized = normalize_schema(schema)
    assert normalized["properties"]["unit"] == {
        "anyOf": [{"enum": ["c", "f"], "title": "Unit", "type": "string"}, {"type": "null"}],
        "default": None,
    }
    assert make_strict(normalized) == {
        "type": "object",
        "properties": {
            "city": {"title": "City", "type": "string"},
            "unit": {
                "anyOf": [{"enum": ["c", "f"], "title": "Unit", "type": "string"}, {"type": "null"}]
            },
            "days": {"title": "Days", "type": ["integer", "null"], "maximum": 7},
        },
        "required": ["city", "unit", "days"],
        "title": "ForecastArgs",
        "additionalProperties": False,
    }
    ref = ToolIndex([("w", tool("forecast", schema))], strict=True)["forecast"]
    assert ref.call_arguments({"city": "Oslo", "unit": None, "days": None}) == {
        "city": "Oslo",
        "unit": None,
    }


def test_a_zod_style_schema() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$ref": "#/definitions/Args",
        "definitions": {
            "Args": {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "minLength": 1},
                    "backup": {"$ref": "#/definitions/Args/properties/path"},
                },
                "required": ["path"],
                "additionalProperties": False,
            }
        },
    }
    assert normalize_schema(schema) == {
        "type": "object",
        "properties": {
            "path": {"type": "string", "minLength": 1},
            "backup": {"type": "string", "minLength": 1},
        },
        "required": ["path"],
        "additionalProperties": False,
    }
