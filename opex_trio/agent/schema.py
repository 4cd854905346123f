"""Normalisation of MCP tools' input schemas into self-contained object schemas.

Theory of operation
-------------------
MCP servers write their input schemas in whatever JSON Schema dialect and with
whatever features their authors liked. :func:`normalize_schema` walks one
schema document once (a :class:`_Normalizer`): it first indexes every
``$id`` and anchor, then copies the schema keyword by keyword, inlining
references, rewriting older drafts' forms in 2020-12 terms and dropping what
only shaped reference resolution.

Each step of the walk returns the rewritten subschema and whether it is exact.
A subschema that cannot be rewritten exactly (recursion past the depth bound,
a reference that does not resolve, ``$dynamicRef``) is loosened to ``{}``;
loosening is sound only where it cannot make the whole schema stricter, so
under ``not``, ``oneOf``, ``if`` and ``contains`` a loosened child is repaired
by dropping or rewriting its parent keyword. The result therefore accepts
every object the original accepts.

Nothing here does IO; the functions are pure.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any, Final
from urllib.parse import unquote, urldefrag, urljoin

from ..errors import ConfigError
from ..protocol.dialects import DEFAULT_DIALECT, dialect_of, unsupported_dialect

__all__ = ["DEFAULT_MAX_REF_DEPTH", "normalize_schema", "types_of"]

DEFAULT_MAX_REF_DEPTH: Final = 3
"""How many times one recursive ``$ref`` is unrolled inside itself before it becomes ``{}``."""

# Past this many inlined references, further ones become ``{}``: a schema
# whose definitions each use the next twice would otherwise grow exponentially.
_MAX_REF_EXPANSIONS: Final = 1000
# Nesting beyond this is loosened to ``{}`` instead of exhausting the stack.
_MAX_NESTING: Final = 64


_ANNOTATIONS: Final = frozenset(
    {"description", "title", "default", "examples", "deprecated", "readOnly", "writeOnly"}
)
# Removed everywhere: they only shape reference resolution, which is done here.
_DROPPED: Final = frozenset(
    {
        "$schema",
        "$id",
        "$anchor",
        "$dynamicAnchor",
        "$recursiveAnchor",
        "$vocabulary",
        "$comment",
        "$defs",
        "definitions",
    }
)
# Keywords whose meaning depends on siblings in the same schema object; a
# referenced schema is merged into the referring one only when neither has any.
_ADJACENT: Final = frozenset(
    {
        "properties",
        "patternProperties",
        "additionalProperties",
        "unevaluatedProperties",
        "prefixItems",
        "items",
        "additionalItems",
        "unevaluatedItems",
        "contains",
        "minContains",
        "maxContains",
        "if",
        "then",
        "else",
    }
)
# 2020-12 keywords an older dialect does not know: a validator of that dialect
# ignores them, so they are dropped rather than enforced.
_UNKNOWN_TO: Final[dict[int, frozenset[str]]] = {
    2019: frozenset({"$dynamicRef", "prefixItems"}),
    7: frozenset(
        {
            "$dynamicRef",
            "prefixItems",
            "dependentRequired",
            "dependentSchemas",
            "unevaluatedItems",
            "unevaluatedProperties",
            "minContains",
            "maxContains",
        }
    ),
}
_UNKNOWN_TO[6] = _UNKNOWN_TO[7] | {"if", "then", "else"}
_UNKNOWN_TO[4] = _UNKNOWN_TO[6] | {"const", "contains", "propertyNames"}
_UNKNOWN_TO[2020] = frozenset()


_DIALECTS = {"draft-04": 4, "draft-06": 6, "draft-07": 7, "2019-09": 2019, "2020-12": 2020}


def _dialect(schema: Mapping[str, Any]) -> int:
    # normalize_schema refused an unsupported dialect before the walk.
    return _DIALECTS[dialect_of(schema) or DEFAULT_DIALECT]


class _Loosened(Exception):
    pass


class _Normalizer:
    """Walks one schema document; see :func:`normalize_schema`."""

    def __init__(self, root: Mapping[str, Any], max_ref_depth: int) -> None:
        self.root = root
        self.dialect = _dialect(root)
        self.max_ref_depth = max_ref_depth
        self.expansions = 0
        self.id_key = "id" if self.dialect == 4 else "$id"
        # Scope of each schema node: the base URI it is read under.
        self.scope: dict[int, str] = {}
        self.resources: dict[str, Any] = {"": root}
        self.anchors: dict[tuple[str, str], Any] = {}
        self._index(root, "", 0)

    # -- the reference table

    def _own_base(self, node: Mapping[str, Any], base: str) -> str:
        ident = node.get(self.id_key)
        if isinstance(ident, str):
            uri, _ = urldefrag(urljoin(base, ident))
            if uri:
                return uri
        return base

    def _index(self, node: Any, base: str, depth: int) -> None:
        if not isinstance(node, Mapping) or depth > _MAX_NESTING:
            return
        self.scope.setdefault(id(node), base)
        own = self._own_base(node, base)
        ident = node.get(self.id_key)
        if isinstance(ident, str):
            uri, fragment = urldefrag(urljoin(base, ident))
            if uri:
                self.resources.setdefault(uri, node)
            if fragment and not fragment.startswith("/") and self.dialect <= 7:
                self.anchors.setdefault((uri or base, fragment), node)
        anchor = node.get("$anchor")
        if isinstance(anchor, str):
            self.anchors.setdefault((own, anchor), node)
        for child in _subschemas(node):
            self._index(child, own, depth + 1)

    def _resolve(self, ref: str, base: str) -> Any:
        uri, fragment = urldefrag(urljoin(base, ref) if base else ref)
        resource = self.resources.get(uri if uri else base)
        if resource is None:
            raise _Loosened
        if not fragment:
            return resource
        if fragment.startswith("/"):
            target: Any = resource
            for token in fragment[1:].split("/"):
                token = unquote(token).replace("~1", "/").replace("~0", "~")
                if isinstance(target, Mapping) and token in target:
                    target = target[token]
                elif isinstance(target, list) and token.isdigit() and int(token) < len(target):
                    target = target[int(token)]
                else:
                    raise _Loosened
            return target
        found = self.anchors.get((uri if uri else base, unquote(fragment)))
        if found is None:
            raise _Loosened
        return found

    # -- the walk; each method returns (schema, exact)

    def schema(self, node: Any, base: str, depth: int, stack: tuple[int, ...]) -> tuple[Any, bool]:
        if node is True:
            return {}, True
        if node is False:
            return {"not": {}}, True
        if not isinstance(node, Mapping) or depth > _MAX_NESTING:
            return {}, False
        ref = node.get("$ref")
        if isinstance(ref, str) and self.dialect <= 7:
            # Up to draft-07 a reference replaces its whole schema object, $id included.
            target, exact = self._reference(node, ref, base, depth, stack)
            return _with_annotations(target, node), exact
        base = self._own_base(node, base)
        out, exact = self._keywords(node, base, depth, stack)
        if isinstance(ref, str):
            target, ref_exact = self._reference(node, ref, base, depth, stack)
            out = _merge_reference(target, out)
            exact = exact and ref_exact
        elif "$ref" in node:
            exact = False
        if not exact:
            # What counts as evaluated may have shrunk with whatever was loosened.
            out.pop("unevaluatedProperties", None)
            out.pop("unevaluatedItems", None)
        _fill_in(out)
        return out, exact

    def _reference(
        self, site: Mapping[str, Any], ref: str, base: str, depth: int, stack: tuple[int, ...]
    ) -> tuple[dict[str, Any], bool]:
        try:
            target = self._resolve(ref, base)
        except _Loosened:
            return _unconstrained(site, None), False
        if stack.count(id(target)) >= self.max_ref_depth or self.expansions >= _MAX_REF_EXPANSIONS:
            return _unconstrained(site, target), False
        self.expansions += 1
        target_base = self.scope.get(id(target), base)
        result, exact = self.schema(target, target_base, depth + 1, (*stack, id(target)))
        return result, exact

    def _keywords(
        self, node: Mapping[str, Any], base: str, depth: int, stack: tuple[int, ...]
    ) -> tuple[dict[str, Any], bool]:
        dialect = self.dialect
        unknown = _UNKNOWN_TO[dialect]
        out: dict[str, Any] = {}
        exact = True
        loose_children = False

        def sub(value: Any) -> Any:
            nonlocal loose_children
            result, ok = self.schema(value, base, depth + 1, stack)
            loose_children = loose_children or not ok
            return result

        loose_not = loose_if = loose_one_of = loose_contains = False
        for key, value in node.items():
            if key in _DROPPED or key in unknown or key == "$ref":
                continue
            if dialect == 4 and key == "id":
                continue
            if key in ("$dynamicRef", "$recursiveRef"):
                # Dynamic scope is not modelled; dropping the keyword only loosens.
                exact = False
                continue
            if key in ("additionalProperties", "unevaluatedProperties", "unevaluatedItems"):
                out[key] = value if isinstance(value, bool) else sub(value)
            elif key == "items":
                if isinstance(value, list) and dialect < 2020:
                    out["prefixItems"] = [sub(v) for v in value]
                    extra = node.get("additionalItems")
                    if extra is not None:
                        out["items"] = extra if isinstance(extra, bool) else sub(extra)
                elif isinstance(value, bool | Mapping):
                    out[key] = value if isinstance(value, bool) else sub(value)
                else:
                    exact = False
            elif key == "additionalItems" and dialect < 2020:
                continue  # read with "items"; without an items array it does nothing
            elif key == "contains":
                result, ok = self.schema(value, base, depth + 1, stack)
                out[key] = result
                loose_contains = not ok
            elif key == "propertyNames":
                out[key] = sub(value)
            elif key in ("properties", "patternProperties", "dependentSchemas"):
                if isinstance(value, Mapping):
                    out[key] = {k: sub(v) for k, v in value.items()}
                else:
                    exact = False
            elif key in ("allOf", "anyOf", "prefixItems"):
                if isinstance(value, list) and value:
                    out[key] = [sub(v) for v in value]
                else:
                    exact = False
            elif key == "oneOf":
                if isinstance(value, list) and value:
                    results = [self.schema(v, base, depth + 1, stack) for v in value]
                    out[key] = [r for r, _ in results]
                    loose_one_of = not all(ok for _, ok in results)
                else:
                    exact = False
            elif key == "not":
                result, ok = self.schema(value, base, depth + 1, stack)
                out[key] = result
                loose_not = not ok
            elif key == "if":
                result, ok = self.schema(value, base, depth + 1, stack)
                out[key] = result
                loose_if = not ok
            elif key in ("then", "else"):
                out[key] = sub(value)
            elif key == "dependencies" and dialect < 2019:
                if isinstance(value, Mapping):
                    for prop, dependency in value.items():
                        if isinstance(dependency, list):
                            out.setdefault("dependentRequired", {})[prop] = list(dependency)
                        else:
                            out.setdefault("dependentSchemas", {})[prop] = sub(dependency)
                else:
                    exact = False
            elif key in ("exclusiveMaximum", "exclusiveMinimum") and dialect == 4:
                bound = "maximum" if key == "exclusiveMaximum" else "minimum"
                if value is True and isinstance(node.get(bound), int | float):
                    out[key] = node[bound]
            elif key in ("maximum", "minimum") and dialect == 4:
                flag = "exclusiveMaximum" if key == "maximum" else "exclusiveMinimum"
                if node.get(flag) is not True:
                    out[key] = copy.deepcopy(value)
            else:
                out[key] = copy.deepcopy(value)

        # Loosening is sound only in positive positions; repair the others.
        if loose_not:
            del out["not"]
            exact = False
        if loose_one_of:
            _add_any_of(out, out.pop("oneOf"))
            exact = False
        if loose_if:
            del out["if"]
            branches = [out.pop(k) for k in ("then", "else") if k in out]
            if len(branches) == 2:
                _add_any_of(out, branches)
            exact = False
        if loose_contains:
            out.pop("maxContains", None)
            exact = False
        return out, exact and not loose_children


def _subschemas(node: Mapping[str, Any]) -> Iterator[Any]:
    """Every schema directly inside ``node``, in any dialect (also inside ``$defs``)."""
    for key, value in node.items():
        if key in (
            "additionalProperties",
            "unevaluatedProperties",
            "unevaluatedItems",
            "additionalItems",
            "contains",
            "propertyNames",
            "not",
            "if",
            "then",
            "else",
        ):
            yield value
        elif key == "items":
            if isinstance(value, list):
                yield from value
            else:
                yield value
        elif key in (
            "properties",
            "patternProperties",
            "dependentSchemas",
            "dependencies",
            "$defs",
            "definitions",
        ):
            if isinstance(value, Mapping):
                yield from value.values()
        elif key in ("allOf", "anyOf", "oneOf", "prefixItems") and isinstance(value, list):
            yield from value


def _unconstrained(site: Mapping[str, Any], target: Any) -> dict[str, Any]:
    """``{}`` in place of a reference, keeping a description the model can use."""
    out: dict[str, Any] = {}
    for source in (target, site):
        if isinstance(source, Mapping):
            for key in ("title", "description"):
                if isinstance(source.get(key), str):
                    out[key] = source[key]
    return out


def _with_annotations(target: dict[str, Any], site: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(target)
    for key in ("title", "description"):
        if isinstance(site.get(key), str):
            out[key] = site[key]
    return out


def _merge_reference(target: dict[str, Any], site: dict[str, Any]) -> dict[str, Any]:
    """``allOf[target, site]``, as one flat schema where that means the same."""
    constraints = {k: v for k, v in site.items() if k not in _ANNOTATIONS}
    annotations = {k: v for k, v in site.items() if k in _ANNOTATIONS}
    if not constraints:
        return {**target, **annotations}
    if (
        not constraints.keys() & target.keys()
        and not (constraints.keys() | target.keys()) & _ADJACENT
    ):
        return {**target, **site}
    # The unevaluated keywords stay beside the reference: only there do they
    # see what the referenced schema evaluated.
    outer: dict[str, Any] = {k: constraints.pop(k) for k in _UNEVALUATED if k in constraints}
    _fill_in(constraints)
    return {**annotations, "allOf": [target, constraints], **outer}


_UNEVALUATED: Final = ("unevaluatedProperties", "unevaluatedItems")


def _add_any_of(out: dict[str, Any], branches: list[Any]) -> None:
    if "anyOf" in out:
        out.setdefault("allOf", []).append({"anyOf": branches})
    else:
        out["anyOf"] = branches


def types_of(schema: Mapping[str, Any]) -> list[str]:
    """The JSON types ``schema`` names in ``type`` (none when it names none)."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [t for t in kind if isinstance(t, str)]
    return []


def _fill_in(out: dict[str, Any]) -> None:
    """Add what providers insist on and validators do not need."""
    kinds = types_of(out)
    if "object" in kinds and "properties" not in out:
        out["properties"] = {}
    if "array" in kinds and "items" not in out:
        out["items"] = {}


def normalize_schema(
    schema: Mapping[str, Any] | bool, *, max_ref_depth: int = DEFAULT_MAX_REF_DEPTH
) -> dict[str, Any]:
    """Turn an MCP tool's input schema into a self-contained object schema.

    The result has ``"type": "object"`` and ``properties`` at the top; every
    ``$ref`` is inlined (a recursive one ``max_ref_depth`` times, then replaced
    by ``{}`` that keeps the referenced description; one that cannot be
    resolved becomes ``{}`` too), so no reference dangles; ``$schema``, ``$id``,
    ``$defs``, ``$comment`` and anchors are dropped; older drafts' forms
    (``items`` arrays, ``dependencies``, draft-04 boolean exclusive bounds) are
    rewritten in 2020-12 terms, the dialect every output is read in, and
    keywords the declared draft does not know are dropped, as its validators
    ignore them. Arrays get ``items`` and objects ``properties`` when missing,
    boolean subschemas become ``{}`` and ``{"not": {}}`` (except after
    ``additionalProperties``, ``items`` and the ``unevaluated`` keywords, where
    booleans are idiomatic), descriptions and unknown keywords are kept.

    The result accepts every object the original accepts. Tool arguments are
    always a JSON object, so the top level is narrowed to objects; a schema
    that accepts no object at all (``"type": "string"``, ``false``) raises
    :class:`~opex_trio.errors.ConfigError`. The input is not modified.

    The schema's dialect is its ``$schema`` (2020-12 when it has none, as MCP
    2025-11-25 says). One of :data:`~opex_trio.protocol.dialects.SUPPORTED_DIALECTS`
    is read by its own rules; any other raises :class:`~opex_trio.errors.ConfigError`
    naming it. Such a schema is not read as 2020-12 on a guess: the
    specification asks for an error saying the dialect is not supported, and
    a tool whose arguments cannot be checked is better left out (as
    :class:`~opex_trio.agent.tools.ToolIndex` and the session manager's
    registry do, with the reason) than offered with a schema that may mean
    something else.
    """
    if schema is True:
        return {"type": "object", "properties": {}}
    if schema is False:
        raise ConfigError("the input schema is false: it accepts no arguments at all")
    if not isinstance(schema, Mapping):
        raise ConfigError(
            f"an input schema must be a JSON object, got {type(schema).__name__}: {schema!r:.80}"
        )
    unsupported = unsupported_dialect(schema)
    if unsupported is not None:
        raise ConfigError(unsupported.replace("its input schema", "the input schema", 1))
    try:
        walker = _Normalizer(schema, max_ref_depth)
        out, _ = walker.schema(schema, "", 0, (id(schema),))
    except RecursionError as exc:
        # Only values the walk copies whole (``default``, ``enum``) can get here.
        raise ConfigError("the input schema is nested too deeply") from exc
    kinds = out.get("type")
    if isinstance(kinds, str) and kinds != "object":
        raise ConfigError(f"the input schema has type {kinds!r}; tool arguments are an object")
    if isinstance(kinds, list) and "object" not in kinds:
        raise ConfigError(f"the input schema has type {kinds!r}; tool arguments are an object")
    if out == {"not": {}}:
        raise ConfigError("the input schema accepts nothing")
    out.pop("type", None)
    out = {"type": "object", **out}
    out.setdefault("properties", {})
    return out
