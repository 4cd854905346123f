"""Helpers shared by the tests of tool naming, conversion, schema normalisation and strict mode."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
import referencing.exceptions
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from opex_trio.agent.tools import ToolIndex
from opex_trio.protocol.types import Tool
from opex_trio.testing.strategies import schema_instances

OBJECT = {"type": "object", "properties": {}}
# Schema drawing rejects now and then (a draw that cannot finish); that is expected.
PROPERTY_SETTINGS = settings(
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ]
)


def tool(name: str, schema: Mapping[str, Any] | None = None, **kw: Any) -> Tool:
    return Tool(name=name, input_schema=dict(schema or {"type": "object"}), **kw)


def names_of(index: ToolIndex) -> dict[tuple[str | None, str], str]:
    return {(ref.server, ref.original_name): name for name, ref in index.items()}


# ----------------------------------------------------------------------------- validation helpers


def validator_for(schema: Any) -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema)


def accepts(validator: jsonschema.protocols.Validator, instance: Any) -> bool:
    """Whether ``validator`` accepts ``instance``; a reference it cannot resolve counts as no."""
    try:
        return bool(validator.is_valid(instance))
    except referencing.exceptions.Unresolvable:
        return False


def schema_positions(schema: Any) -> Iterator[Mapping[str, Any]]:
    """Every schema object inside a 2020-12 schema (not values of enum, const, default...)."""
    if not isinstance(schema, Mapping):
        return
    yield schema
    for key, value in schema.items():
        if key in (
            "additionalProperties",
            "unevaluatedProperties",
            "unevaluatedItems",
            "items",
            "contains",
            "propertyNames",
            "not",
            "if",
            "then",
            "else",
        ):
            yield from schema_positions(value)
        elif key in ("properties", "patternProperties", "dependentSchemas") and isinstance(
            value, Mapping
        ):
            for sub in value.values():
                yield from schema_positions(sub)
        elif key in ("allOf", "anyOf", "oneOf", "prefixItems") and isinstance(value, list):
            for sub in value:
                yield from schema_positions(sub)


def fill_for_strict(instance: Any, strict: Any) -> Any:
    """What a model in strict mode sends for ``instance``: absent optional keys as null.

    Keys the strict schema does not declare are left out (strict objects allow
    no others).
    """
    if not isinstance(strict, Mapping):
        return instance
    if isinstance(instance, dict) and isinstance(strict.get("properties"), Mapping):
        return {
            key: fill_for_strict(instance[key], sub) if key in instance else None
            for key, sub in strict["properties"].items()
        }
    if isinstance(instance, list) and isinstance(strict.get("items"), Mapping):
        return [fill_for_strict(item, strict["items"]) for item in instance]
    if "anyOf" in strict:
        for branch in strict["anyOf"]:
            candidate = fill_for_strict(instance, branch)
            if jsonschema.Draft202012Validator(branch).is_valid(candidate):
                return candidate
    return instance


def draw_instances(data: st.DataObject, schema: Any, count: int = 4) -> list[Any]:
    return [data.draw(schema_instances(schema), label="instance") for _ in range(count)]
