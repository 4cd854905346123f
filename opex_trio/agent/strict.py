"""OpenAI strict mode: rewriting a normalized schema into the subset it accepts.

:func:`make_strict` turns a :func:`~opex_trio.agent.schema.normalize_schema`
result into a strict-mode schema, or says it cannot; :func:`strip_nulls` undoes
on the model's arguments what strict mode made the model send (``null`` for an
optional property it left out). Nothing here does IO; the functions are pure.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

import attrs

from .schema import types_of

__all__ = ["make_strict", "strict_or_problem", "strip_nulls"]

# OpenAI's strict mode accepts a subset of JSON Schema. Each node needs a type
# (or anyOf, enum, const); these keywords are allowed for each type, the
# common ones for every node. Annotations it rejects are dropped, as is a
# keyword that only applies to types the node does not have.
_STRICT_COMMON: Final = frozenset({"type", "description", "title", "enum", "const", "anyOf"})
_STRICT_DROPPED: Final = frozenset(
    {"default", "examples", "deprecated", "readOnly", "writeOnly", "$comment"}
)
_STRICT_BY_TYPE: Final[dict[str, frozenset[str]]] = {
    "string": frozenset({"pattern", "format"}),
    "number": frozenset(
        {"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"}
    ),
    "array": frozenset({"items", "minItems", "maxItems"}),
    "object": frozenset({"properties", "required", "additionalProperties"}),
    "boolean": frozenset(),
    "null": frozenset(),
}
_STRICT_BY_TYPE["integer"] = _STRICT_BY_TYPE["number"]
_STRICT_FORMATS: Final = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
# The instance types a type-specific keyword constrains.
_APPLIES_TO: Final[dict[str, frozenset[str]]] = {}
for _kinds, _keywords in (
    ({"string"}, "pattern minLength maxLength contentEncoding contentMediaType"),
    ({"number", "integer"}, "multipleOf maximum exclusiveMaximum minimum exclusiveMinimum"),
    (
        {"array"},
        "items prefixItems minItems maxItems uniqueItems contains minContains maxContains "
        "unevaluatedItems",
    ),
    (
        {"object"},
        "properties required additionalProperties patternProperties propertyNames "
        "minProperties maxProperties dependentRequired dependentSchemas unevaluatedProperties",
    ),
):
    _APPLIES_TO.update(dict.fromkeys(_keywords.split(), frozenset(_kinds)))
_STRICT_MAX_PROPERTIES: Final = 5000
_STRICT_MAX_OBJECT_DEPTH: Final = 10
_STRICT_MAX_ENUM_VALUES: Final = 1000


class _NotStrict(Exception):
    pass


@attrs.define
class _StrictBudget:
    properties: int = 0
    enum_values: int = 0


def make_strict(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """Rewrite a :func:`normalize_schema` result for OpenAI strict mode, or return ``None``.

    Every object gets ``additionalProperties: false`` and lists all its
    properties in ``required``; an optional property becomes nullable (``null``
    joins its ``type`` and ``enum``, or a ``{"type": "null"}`` branch joins its
    ``anyOf``), so the model sends ``null`` where it would have left the key
    out (:meth:`~opex_trio.agent.tools.ToolRef.call_arguments` takes such keys out again).

    ``None`` means strict mode cannot express the schema and the caller sends
    it without ``strict``: a keyword outside the subset strict mode supports
    (``allOf``, ``not``, ``oneOf``, ``if``, ``patternProperties``,
    ``minLength``, ``uniqueItems``, ...), an ``additionalProperties`` schema, a
    node with no type (``{}``, which is also what recursion past the inlining
    depth leaves), a required key with no property schema, an ``anyOf`` at the
    top, or a schema over OpenAI's limits (5000 properties, 10 levels of
    objects, 1000 enum values). Annotations strict mode rejects (``default``,
    ``examples``) and formats it does not know are dropped, which changes no
    validation.
    """
    result, _ = strict_or_problem(schema)
    return result


def strict_or_problem(schema: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """:func:`make_strict`'s result, and when it is ``None`` the reason, for error messages."""
    if types_of(schema) != ["object"] or "anyOf" in schema:
        return None, "the top level must be a plain object schema"
    try:
        return _strict(schema, _StrictBudget(), 0), ""
    except _NotStrict as exc:
        return None, str(exc)


def _strict(node: Any, budget: _StrictBudget, object_depth: int) -> dict[str, Any]:
    if not isinstance(node, Mapping):
        raise _NotStrict("a boolean subschema")
    kinds = types_of(node)
    if "type" in node and (not kinds or not set(kinds) <= _STRICT_BY_TYPE.keys()):
        raise _NotStrict(f"type {node['type']!r}")
    if not kinds and not node.keys() & {"anyOf", "enum", "const"}:
        raise _NotStrict("a subschema without a type")
    allowed = set(_STRICT_COMMON)
    for kind in kinds:
        allowed |= _STRICT_BY_TYPE[kind]
    applicable = set(kinds) | ({"number"} if "integer" in kinds else set())
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _STRICT_DROPPED:
            continue
        if key not in allowed:
            if kinds and key in _APPLIES_TO and not _APPLIES_TO[key] & applicable:
                continue  # constrains only types this node rejects anyway
            raise _NotStrict(f"keyword {key!r}")
        if key == "format" and value not in _STRICT_FORMATS:
            continue
        if key == "anyOf":
            if not isinstance(value, list) or not value:
                raise _NotStrict("a malformed anyOf")
            out[key] = [_strict(branch, budget, object_depth) for branch in value]
        elif key == "items":
            out[key] = _strict(value, budget, object_depth)
        elif key in ("properties", "required", "additionalProperties"):
            continue  # below, together
        elif key in ("enum", "const"):
            if key == "enum":
                if not isinstance(value, list):
                    raise _NotStrict("a malformed enum")
                budget.enum_values += len(value)
                if budget.enum_values > _STRICT_MAX_ENUM_VALUES:
                    raise _NotStrict("more than 1000 enum values")
            out[key] = copy.deepcopy(value)
        else:
            out[key] = copy.deepcopy(value)
    if "object" in kinds:
        _strict_object(node, out, budget, object_depth + 1)
    return out


def _strict_object(
    node: Mapping[str, Any], out: dict[str, Any], budget: _StrictBudget, object_depth: int
) -> None:
    if object_depth > _STRICT_MAX_OBJECT_DEPTH:
        raise _NotStrict("objects nested more than 10 deep")
    properties = node.get("properties", {})
    required = node.get("required", [])
    extra = node.get("additionalProperties", True)
    if not isinstance(properties, Mapping) or not isinstance(required, list):
        raise _NotStrict("malformed properties or required")
    if extra not in (True, False, {}):
        raise _NotStrict("an additionalProperties schema")
    missing = [name for name in required if name not in properties]
    if missing:
        raise _NotStrict(f"required {missing!r} without a property schema")
    budget.properties += len(properties)
    if budget.properties > _STRICT_MAX_PROPERTIES:
        raise _NotStrict("more than 5000 properties")
    converted: dict[str, Any] = {}
    for name, sub in properties.items():
        strict_sub = _strict(sub, budget, object_depth)
        converted[name] = strict_sub if name in required else _nullable(strict_sub)
    out["properties"] = converted
    out["required"] = list(properties)
    out["additionalProperties"] = False


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if _accepts_null(schema):
        return schema
    out = dict(schema)
    if "type" in out and "anyOf" not in out:
        out["type"] = [*types_of(out), "null"]
    elif "anyOf" in out and not out.keys() & {"type", "enum", "const"}:
        out["anyOf"] = [*out["anyOf"], {"type": "null"}]
        return out
    elif "anyOf" in out:
        annotations: dict[str, Any] = {k: out.pop(k) for k in ("title", "description") if k in out}
        return {**annotations, "anyOf": [out, {"type": "null"}]}
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    if "const" in out:
        out["enum"] = [out.pop("const"), None]
    return out


def _accepts_null(schema: Any) -> bool:
    """Whether ``schema`` visibly accepts ``null`` (when unsure: ``True``)."""
    if not isinstance(schema, Mapping):
        return schema is not False
    if "type" in schema and "null" not in types_of(schema):
        return False
    if "enum" in schema and (not isinstance(schema["enum"], list) or None not in schema["enum"]):
        return False
    if "const" in schema and schema["const"] is not None:
        return False
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and not any(_accepts_null(b) for b in branches):
            return False
    branches = schema.get("allOf")
    if isinstance(branches, list) and not all(_accepts_null(b) for b in branches):
        return False
    return not ("not" in schema and schema["not"] == {})


def strip_nulls(value: Any, schema: Any) -> Any:
    """Drop ``null`` values of optional properties whose schema does not accept ``null``."""
    if not isinstance(schema, Mapping):
        return value
    if isinstance(value, dict):
        properties = schema.get("properties")
        if isinstance(properties, Mapping):
            required = schema.get("required", [])
            out = {}
            for key, item in value.items():
                sub = properties.get(key)
                if (
                    item is None
                    and key in properties
                    and key not in required
                    and not _accepts_null(sub)
                ):
                    continue
                out[key] = strip_nulls(item, sub) if key in properties else item
            value = out
        branch = _matching_branch(value, schema)
        if branch is not None:
            value = strip_nulls(value, branch)
        return value
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            return [strip_nulls(v, items) for v in value]
        branch = _matching_branch(value, schema)
        if branch is not None:
            return strip_nulls(value, branch)
    return value


def _matching_branch(value: Any, schema: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first ``anyOf`` branch that looks made for ``value``, by JSON type and keys."""
    branches = schema.get("anyOf")
    if not isinstance(branches, list):
        return None
    want = "object" if isinstance(value, dict) else "array"
    for branch in branches:
        if not isinstance(branch, Mapping) or want not in types_of(branch):
            continue
        properties = branch.get("properties")
        if (
            want == "object"
            and isinstance(properties, Mapping)
            and not set(value) <= set(properties)
        ):
            continue
        return branch
    return None
