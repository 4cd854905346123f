"""The instance writer behind :func:`opex_trio.testing.strategies.schema_instances`.

It walks a JSON Schema and draws a value meant to satisfy it: exactly for the
common keywords, approximately for the rest, following local references a
bounded number of times.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final

from hypothesis import reject
from hypothesis import strategies as st

__all__ = ["InstanceWriter"]


_MAX_INSTANCE_REFS: Final = 6
_NOT_CONSTRAINTS: Final = frozenset(
    {"description", "title", "default", "examples", "$comment", "$schema", "$defs", "definitions"}
)


class InstanceWriter:
    def __init__(
        self,
        draw: st.DrawFn,
        root: Any,
        json_values: Callable[[int], st.SearchStrategy[Any]],
    ) -> None:
        self.draw = draw
        self.json_values = json_values
        self.root = root
        self.old = isinstance(root, Mapping) and any(
            marker in str(root.get("$schema", ""))
            for marker in ("draft-04", "draft-06", "draft-07")
        )
        self.draft4 = isinstance(root, Mapping) and "draft-04" in str(root.get("$schema", ""))
        self.tuple_items = self.old or (
            isinstance(root, Mapping) and "2019-09" in str(root.get("$schema", ""))
        )

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return True
        if ref == "#":
            return self.root
        node: Any = self.root
        for token in ref[2:].split("/"):
            token = token.replace("%20", " ").replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and token in node:
                node = node[token]
            else:
                return True
        return node

    def value(self, schema: Any, refs: int, depth: int) -> Any:
        draw = self.draw
        if schema is True or schema == {}:
            return draw(self.json_values(4))
        if schema is False or not isinstance(schema, Mapping):
            reject()
        ref = schema.get("$ref")
        if isinstance(ref, str) and (self.old or len(schema) == 1):
            if refs >= _MAX_INSTANCE_REFS:
                reject()
            return self.value(self.resolve(ref), refs + 1, depth + 1)
        if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
            return draw(st.sampled_from(schema["enum"]))
        if "const" in schema and not self.draft4:
            return schema["const"]
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                branch = draw(st.sampled_from(schema[key]))
                merged = self.merge(schema, key, branch)
                return self.value(merged, refs, depth + 1)
        if isinstance(schema.get("allOf"), list) and schema["allOf"]:
            return self.value(self.merge(schema, "allOf", schema["allOf"][0]), refs, depth + 1)
        if isinstance(ref, str):
            if refs >= _MAX_INSTANCE_REFS:
                reject()
            target = self.resolve(ref)
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            return self.value(self.merge(rest, "", target), refs + 1, depth + 1)
        if "then" in schema or "else" in schema:
            branch = schema.get("then" if draw(st.booleans()) else "else", True)
            return self.value(self.merge(schema, "if", branch), refs, depth + 1)
        kinds = schema.get("type")
        if isinstance(kinds, str):
            kinds = [kinds]
        if not isinstance(kinds, list) or not kinds:
            kinds = self.guess_types(schema)
        kind = draw(st.sampled_from(kinds))
        return self.typed(kind, schema, refs, depth)

    def merge(self, schema: Mapping[str, Any], key: str, branch: Any) -> Any:
        """``schema`` without ``key`` (and its companions), with ``branch``'s keywords added."""
        drop = {key, "then", "else"} if key == "if" else {key}
        rest = {k: v for k, v in schema.items() if k not in drop}
        if not rest.keys() - _NOT_CONSTRAINTS:
            return branch
        if branch is True:
            return rest
        if not isinstance(branch, Mapping) or "$ref" in branch:
            # Approximate: the branch alone; the caller's validator has the last word.
            return branch
        merged = dict(rest)
        for k, v in branch.items():
            if k == "properties" and isinstance(merged.get(k), Mapping) and isinstance(v, Mapping):
                merged[k] = {**merged[k], **v}
            elif k == "required" and isinstance(merged.get(k), list) and isinstance(v, list):
                merged[k] = [*merged[k], *v]
            elif k not in merged:
                merged[k] = v
        return merged

    @staticmethod
    def guess_types(schema: Mapping[str, Any]) -> list[str]:
        if schema.keys() & {"properties", "required", "additionalProperties", "patternProperties"}:
            return ["object"]
        if schema.keys() & {"items", "prefixItems", "minItems", "maxItems"}:
            return ["array"]
        if schema.keys() & {"minLength", "maxLength", "pattern"}:
            return ["string"]
        if schema.keys() & {"minimum", "maximum", "multipleOf"}:
            return ["number"]
        return ["null", "boolean", "integer", "string", "object", "array"]

    def typed(self, kind: str, schema: Mapping[str, Any], refs: int, depth: int) -> Any:
        draw = self.draw
        if kind == "null":
            return None
        if kind == "boolean":
            return draw(st.booleans())
        if kind in ("integer", "number"):
            return self.number(kind, schema)
        if kind == "string":
            return self.string(schema)
        if kind == "array":
            return self.array(schema, refs, depth)
        if kind == "object":
            return self.object(schema, refs, depth)
        return reject()

    def number(self, kind: str, schema: Mapping[str, Any]) -> Any:
        low, high = -1000.0, 1000.0
        low_open = high_open = False
        for key, is_low, is_open in (
            ("minimum", True, False),
            ("maximum", False, False),
            ("exclusiveMinimum", True, True),
            ("exclusiveMaximum", False, True),
        ):
            bound = schema.get(key)
            if isinstance(bound, bool):
                continue
            if isinstance(bound, int | float):
                if is_low and bound >= low:
                    low, low_open = float(bound), is_open
                if not is_low and bound <= high:
                    high, high_open = float(bound), is_open
        if schema.get("exclusiveMinimum") is True:
            low_open = True
        if schema.get("exclusiveMaximum") is True:
            high_open = True
        step = schema.get("multipleOf")
        if kind == "integer" or (isinstance(step, int | float) and not isinstance(step, bool)):
            unit = step if isinstance(step, int | float) and not isinstance(step, bool) else 1
            if kind == "integer" and unit != int(unit):
                unit = 1 if unit < 1 else unit
            first = math.ceil(low / unit) + (1 if low_open and (low / unit).is_integer() else 0)
            last = math.floor(high / unit) - (1 if high_open and (high / unit).is_integer() else 0)
            if first > last:
                reject()
            k = self.draw(st.integers(first, last))
            value = k * unit
            return int(value) if float(value).is_integer() and kind == "integer" else value
        if low >= high:
            reject()
        return self.draw(
            st.floats(low, high, exclude_min=low_open, exclude_max=high_open, allow_nan=False)
        )

    def string(self, schema: Mapping[str, Any]) -> str:
        low = schema.get("minLength", 0)
        high = schema.get("maxLength", 12)
        low = low if isinstance(low, int) and not isinstance(low, bool) else 0
        high = high if isinstance(high, int) and not isinstance(high, bool) else 12
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            text = self.draw(st.from_regex(pattern))
            if not low <= len(text) <= high:
                reject()
            return text
        if low > high:
            reject()
        return self.draw(st.text(min_size=low, max_size=high))

    def array(self, schema: Mapping[str, Any], refs: int, depth: int) -> list[Any]:
        low = schema.get("minItems", 0)
        high = schema.get("maxItems", 3)
        low = low if isinstance(low, int) else 0
        high = min(high if isinstance(high, int) else 3, 3, max(low, 0) + 3)
        if depth > 6:
            high = low
        prefix = schema.get("prefixItems")
        items = schema.get("items", True)
        rest: Any = items
        if isinstance(items, list) and self.tuple_items:
            prefix, rest = items, schema.get("additionalItems", True)
        elif isinstance(items, list):
            prefix, rest = None, True
        prefix = prefix if isinstance(prefix, list) else []
        size = self.draw(st.integers(low, max(low, high)))
        out = [
            self.value(prefix[i] if i < len(prefix) else rest, refs, depth + 1) for i in range(size)
        ]
        if "contains" in schema and not out:
            out.append(self.value(schema["contains"], refs, depth + 1))
        return out

    def object(self, schema: Mapping[str, Any], refs: int, depth: int) -> dict[str, Any]:
        properties = schema.get("properties", {})
        properties = properties if isinstance(properties, Mapping) else {}
        required = schema.get("required", [])
        required = [r for r in required if isinstance(r, str)] if isinstance(required, list) else []
        optional = [name for name in properties if name not in required]
        chosen = (
            []
            if depth > 6
            else self.draw(st.lists(st.sampled_from(optional), unique=True))
            if optional
            else []
        )
        extra = schema.get("additionalProperties", True)
        out: dict[str, Any] = {}
        for name in [*required, *chosen]:
            sub = properties.get(name, extra)
            out[name] = self.value(sub, refs, depth + 1)
        if extra is not False and depth <= 6 and self.draw(st.integers(0, 4)) == 0:
            key = self.draw(st.text(max_size=4))
            if key not in properties:
                out[key] = self.value(extra, refs, depth + 1)
        return out
