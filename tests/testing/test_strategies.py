"""The hypothesis strategies in opex_trio.testing.strategies draw what they promise."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opex_trio.agent.tools import TOOL_NAME_PATTERN
from opex_trio.protocol.types import Tool
from opex_trio.testing.strategies import (
    DIALECTS,
    json_values,
    mcp_tools,
    schema_instances,
    strict_friendly_schemas,
    tool_input_schemas,
    tool_names,
    tool_sets,
)

RELAXED = settings(
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ]
)


@pytest.mark.fuzz
@RELAXED
@given(tool_input_schemas())
def test_schemas_are_valid_in_their_dialect(schema: dict[str, Any]) -> None:
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    assert schema.get("$schema") in DIALECTS.values()


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_every_dialect_can_be_drawn(dialect: str) -> None:
    @settings(RELAXED, max_examples=10)
    @given(tool_input_schemas(dialects=[dialect]))
    def check(schema: dict[str, Any]) -> None:
        assert schema.get("$schema") == DIALECTS[dialect]

    check()


@RELAXED
@given(strict_friendly_schemas(), st.data())
def test_instances_of_simple_schemas_are_valid(schema: dict[str, Any], data: st.DataObject) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    for _ in range(3):
        instance = data.draw(schema_instances(schema))
        assert validator.is_valid(instance), instance


@RELAXED
@given(
    st.sampled_from(
        [
            {
                "$ref": "#/$defs/N",
                "$defs": {"N": {"type": "object", "properties": {"n": {"$ref": "#/$defs/N"}}}},
            },
            {
                "type": "array",
                "prefixItems": [{"type": "integer", "minimum": 3}],
                "items": {"const": 1},
            },
            {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            {"type": "integer", "multipleOf": 3, "minimum": 4, "maximum": 20},
            {"anyOf": [{"type": "string", "pattern": "^[a-z]+$"}, {"enum": [1, [2]]}]},
            {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "array",
                "items": [{"type": "string"}],
                "additionalItems": {"type": "null"},
            },
        ]
    ),
    st.data(),
)
def test_instances_follow_refs_and_common_keywords(
    schema: dict[str, Any], data: st.DataObject
) -> None:
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    assert cls(schema).is_valid(data.draw(schema_instances(schema)))


@given(tool_sets())
def test_tool_sets(entries: list[tuple[str | None, Tool]]) -> None:
    pairs = [(server, tool.name) for server, tool in entries]
    assert len(pairs) == len(set(pairs))
    for server, tool in entries:
        if server is None:
            assert TOOL_NAME_PATTERN.match(tool.name)


@given(mcp_tools(), tool_names(), json_values())
def test_other_strategies_draw_their_types(tool: Tool, name: str, value: Any) -> None:
    assert isinstance(tool, Tool)
    assert isinstance(name, str)
    assert tool.to_dict()["inputSchema"] == {"type": "object"}
