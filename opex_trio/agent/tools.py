"""Conversion between MCP tools and OpenAI function tools, and the names tools get.

Theory of operation
-------------------
A model sees tools as OpenAI function tools: a name matching
``^[a-zA-Z0-9_-]{1,64}$`` and a JSON Schema for the arguments. MCP servers
name their tools freely (dots, slashes, unicode, any length), two servers may
offer tools with the same name, and their input schemas use whatever JSON
Schema dialect and features their authors liked. This module bridges the two
with pure functions and one pure object:

* :func:`normalize_schema` turns any input schema into a self-contained object
  schema: references inlined, dialect quirks of older drafts rewritten in
  2020-12 terms, ``properties`` and ``items`` added where providers insist on
  them. The result accepts every object the original accepts (it may accept
  more: where an exact rewrite is impossible, such as recursion past a depth
  bound, a subschema is loosened to ``{}``, and loosening is only ever done
  where it cannot make the whole schema stricter).
* :func:`make_strict` rewrites a normalized schema for OpenAI's strict mode, or
  returns ``None`` when the schema uses something strict mode cannot express;
  the caller then sends the normalized schema without ``strict``.
* :class:`ToolIndex` takes every server's tools and the program's own tools,
  gives each one a unique, stable, provider-valid name, converts it, and maps
  the names the model uses back to ``(server, original name)``.

Names follow the rule of :mod:`opex_trio.mcp.naming` (the session manager's
registry uses the same one): the program's own tools keep their names and win
every collision, an MCP tool keeps its name made valid when nobody else wants
it, then ``server__tool``, then a cut name with a short hash. The same set of
tools always gets the same names, whatever the order.

Nothing here does IO; the functions are pure and the objects immutable.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final
from urllib.parse import unquote, urldefrag, urljoin

import attrs

from ..errors import ConfigError, UnknownToolError
from ..mcp.naming import (
    MAX_TOOL_NAME_LENGTH,
    TOOL_NAME_PATTERN,
    assign_names,
    is_valid_tool_name,
    sanitize_tool_name,
)
from ..protocol.types import Tool

__all__ = [
    "DEFAULT_MAX_REF_DEPTH",
    "MAX_TOOL_NAME_LENGTH",
    "TOOL_NAME_PATTERN",
    "SkippedTool",
    "ToolIndex",
    "ToolRef",
    "make_strict",
    "mcp_tool_to_openai",
    "normalize_schema",
    "openai_tool_to_mcp",
    "sanitize_tool_name",
]

DEFAULT_MAX_REF_DEPTH: Final = 3
"""How many times one recursive ``$ref`` is unrolled inside itself before it becomes ``{}``."""

# Past this many inlined references, further ones become ``{}``: a schema
# whose definitions each use the next twice would otherwise grow exponentially.
_MAX_REF_EXPANSIONS: Final = 1000
# Nesting beyond this is loosened to ``{}`` instead of exhausting the stack.
_MAX_NESTING: Final = 64


@attrs.frozen
class ToolRef:
    """One tool as the model sees it, and where calls to it go.

    ``name`` is the name the model uses; ``server`` the id of the MCP server
    that offers the tool, or ``None`` for the program's own tools; ``tool`` the
    tool as its owner described it. ``parameters`` is the schema sent to the
    model: the normalized input schema, made strict when ``strict`` is true.
    ``normalized_schema`` is the normalized input schema in any case.
    """

    name: str
    server: str | None
    tool: Tool
    parameters: Mapping[str, Any] = attrs.field(repr=False)
    normalized_schema: Mapping[str, Any] = attrs.field(repr=False)
    strict: bool = False

    @property
    def original_name(self) -> str:
        """The tool's name on its server (or as the program gave it)."""
        return self.tool.name

    @property
    def is_custom(self) -> bool:
        """Whether this is one of the program's own tools rather than an MCP server's."""
        return self.server is None

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI function tool for the ``tools`` list of a chat request (a fresh dict)."""
        return _openai_tool(self.name, _description(self.tool), self.parameters, self.strict)

    def call_arguments(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments to send to the tool, given the ones the model produced.

        In strict mode an optional parameter the model leaves out comes as
        ``null``; where the tool's own schema does not accept ``null`` there,
        the key is dropped so the tool sees it as omitted. Otherwise the
        arguments are returned as they are (in a new dict).
        """
        if not self.strict:
            return dict(arguments)
        stripped = _strip_nulls(dict(arguments), self.normalized_schema)
        assert isinstance(stripped, dict)
        return stripped


@attrs.frozen
class SkippedTool:
    """An MCP tool left out of a :class:`ToolIndex` because it cannot be offered to a model.

    ``reason`` says why: today, an input schema that no JSON object can satisfy
    (tool arguments are always an object).
    """

    server: str
    name: str
    reason: str


@attrs.frozen
class _Entry:
    server: str | None
    tool: Tool
    strict: bool | None  # None: the index's default
    normalized: dict[str, Any]

    @property
    def key(self) -> tuple[int, str, str]:
        return (0 if self.server is None else 1, self.server or "", self.tool.name)


class ToolIndex(Mapping[str, ToolRef]):
    """Every tool a model may call, under unique, stable, provider-valid names.

    ``tools`` is an iterable of ``(server_id, tool)`` pairs. ``server_id`` is
    ``None`` for the program's own tools, which may be given as a
    :class:`~opex_trio.protocol.types.Tool` or as an OpenAI tool dict (a
    ``"strict"`` key in such a dict overrides the index's ``strict`` for that
    tool). Names follow the rule in this module's docstring; iteration yields
    the program's tools first, in the order given, then MCP tools sorted by
    server id and name, so the tool list sent to the model is the same on every
    request for the same tools.

    ``strict=True`` asks for OpenAI strict mode; each tool whose schema cannot
    be made strict is sent without it (:attr:`ToolRef.strict` tells which).

    MCP tools whose schema accepts no object are left out and listed in
    :attr:`skipped`. The program's own tools with a bad name or schema raise
    :class:`~opex_trio.errors.ConfigError` naming the tool, as does a program
    tool name given twice. A server that lists one name twice keeps the first.

    Looking up an unknown name raises :class:`~opex_trio.errors.UnknownToolError`
    (a :class:`KeyError`), so ``index.get(name)`` returns ``None`` for it.
    """

    def __init__(
        self,
        tools: Iterable[tuple[str | None, Tool | Mapping[str, Any]]] = (),
        *,
        strict: bool = False,
        max_ref_depth: int = DEFAULT_MAX_REF_DEPTH,
    ) -> None:
        custom: list[_Entry] = []
        mcp: dict[tuple[str, str], _Entry] = {}
        skipped: list[SkippedTool] = []
        seen_custom: set[str] = set()
        for item in tools:
            server, spec = _split_item(item)
            if server is None:
                entry = _custom_entry(spec, max_ref_depth)
                if entry.tool.name in seen_custom:
                    raise ConfigError(f"custom tool {entry.tool.name!r} is given twice")
                seen_custom.add(entry.tool.name)
                custom.append(entry)
                continue
            if not isinstance(spec, Tool):
                raise ConfigError(
                    f"tools of server {server!r} must be Tool objects, got {type(spec).__name__}"
                )
            if (server, spec.name) in mcp:
                continue
            try:
                normalized = normalize_schema(spec.input_schema, max_ref_depth=max_ref_depth)
            except ConfigError as exc:
                skipped.append(SkippedTool(server, spec.name, str(exc)))
                continue
            mcp[(server, spec.name)] = _Entry(server, spec, None, normalized)

        names = assign_names(
            [e.tool.name for e in custom], [(e.server or "", e.tool.name) for e in mcp.values()]
        )
        self._refs: dict[str, ToolRef] = {}
        self._by_origin: dict[tuple[str | None, str], str] = {}
        for entry in custom + sorted(mcp.values(), key=lambda e: e.key):
            name = names[(entry.server, entry.tool.name)]
            ref = _make_ref(name, entry, strict)
            self._refs[name] = ref
            self._by_origin[(entry.server, entry.tool.name)] = name
        self._skipped = tuple(skipped)

    @classmethod
    def from_servers(
        cls,
        servers: Mapping[str, Iterable[Tool]],
        custom_tools: Iterable[Tool | Mapping[str, Any]] = (),
        *,
        strict: bool = False,
        max_ref_depth: int = DEFAULT_MAX_REF_DEPTH,
    ) -> ToolIndex:
        """Build an index from ``{server_id: tools}`` and the program's own tools."""
        items: list[tuple[str | None, Tool | Mapping[str, Any]]] = [
            (None, tool) for tool in custom_tools
        ]
        items.extend((server, tool) for server, tools in servers.items() for tool in tools)
        return cls(items, strict=strict, max_ref_depth=max_ref_depth)

    def __getitem__(self, name: str) -> ToolRef:
        try:
            return self._refs[name]
        except KeyError:
            raise UnknownToolError(f"no tool is named {name!r}", name=name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)

    def __repr__(self) -> str:
        return f"ToolIndex({list(self._refs)!r})"

    @property
    def skipped(self) -> tuple[SkippedTool, ...]:
        """The MCP tools left out, with the reason for each."""
        return self._skipped

    def resolve(self, name: str) -> ToolRef:
        """The tool exposed as ``name``; :class:`~opex_trio.errors.UnknownToolError` if none."""
        return self[name]

    def name_for(self, server: str | None, original_name: str) -> str:
        """The name the tool ``original_name`` of ``server`` (``None``: a custom tool) has."""
        try:
            return self._by_origin[(server, original_name)]
        except KeyError:
            where = "custom tools" if server is None else f"server {server!r}"
            raise UnknownToolError(
                f"{where} offer no tool named {original_name!r}",
                name=original_name,
                server=server,
            ) from None

    def openai_tools(self) -> list[dict[str, Any]]:
        """The ``tools`` list for a chat request, in this index's order (fresh dicts)."""
        return [ref.to_openai() for ref in self._refs.values()]


def _split_item(item: Any) -> tuple[str | None, Any]:
    if not isinstance(item, tuple | list) or len(item) != 2:
        raise ConfigError(f"a tool entry must be a (server_id, tool) pair, got {item!r}")
    server, spec = item
    if server is not None and not isinstance(server, str):
        raise ConfigError(f"a server id must be a string or None, got {server!r}")
    return server, spec


def _custom_entry(spec: Any, max_ref_depth: int) -> _Entry:
    strict: bool | None = None
    if isinstance(spec, Tool):
        tool = spec
    elif isinstance(spec, Mapping):
        tool = openai_tool_to_mcp(spec)
        fn = spec.get("function", spec)
        flag = fn.get("strict") if isinstance(fn, Mapping) else None
        if flag is not None and not isinstance(flag, bool):
            raise ConfigError(f"custom tool {tool.name!r}: 'strict' must be a boolean")
        strict = flag
    else:
        raise ConfigError(
            f"a custom tool must be a Tool or an OpenAI tool dict, got {type(spec).__name__}"
        )
    if not is_valid_tool_name(tool.name):
        raise ConfigError(
            f"custom tool name {tool.name!r} is not valid: it must match "
            f"{TOOL_NAME_PATTERN.pattern} (letters, digits, '_' or '-', at most 64)"
        )
    try:
        normalized = normalize_schema(tool.input_schema, max_ref_depth=max_ref_depth)
    except ConfigError as exc:
        raise ConfigError(f"custom tool {tool.name!r}: {exc}") from exc
    return _Entry(None, tool, strict, normalized)


def _make_ref(name: str, entry: _Entry, default_strict: bool) -> ToolRef:
    want_strict = default_strict if entry.strict is None else entry.strict
    if want_strict:
        strict_schema, problem = _strict_or_problem(entry.normalized)
        if strict_schema is not None:
            return ToolRef(name, entry.server, entry.tool, strict_schema, entry.normalized, True)
        if entry.strict:
            raise ConfigError(
                f"custom tool {entry.tool.name!r} asks for strict mode, "
                f"but its schema cannot be made strict: {problem}"
            )
    return ToolRef(name, entry.server, entry.tool, entry.normalized, entry.normalized, False)


# --------------------------------------------------------------------------- tool conversion


def _description(tool: Tool) -> str | None:
    if tool.description:
        return tool.description
    if tool.title:
        return tool.title
    if tool.annotations is not None and tool.annotations.title:
        return tool.annotations.title
    return None


def _openai_tool(
    name: str, description: str | None, parameters: Mapping[str, Any], strict: bool
) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name}
    if description is not None:
        function["description"] = description
    function["parameters"] = copy.deepcopy(dict(parameters))
    if strict:
        function["strict"] = True
    return {"type": "function", "function": function}


def mcp_tool_to_openai(
    tool: Tool,
    *,
    name: str | None = None,
    strict: bool = False,
    max_ref_depth: int = DEFAULT_MAX_REF_DEPTH,
) -> dict[str, Any]:
    """Convert one MCP tool into an OpenAI function tool.

    ``name`` is the name to expose (by default the tool's own, which must then
    be valid: use :class:`ToolIndex` to name many tools). The description is
    the tool's ``description``, else its ``title``, else its annotations'
    title; it is passed on whole, since cutting it could drop the very
    instructions a model needs. The schema goes through
    :func:`normalize_schema`; with ``strict=True`` also through
    :func:`make_strict`, and ``"strict": true`` is set only when that worked.

    Raises :class:`~opex_trio.errors.ConfigError` for an invalid name or a
    schema that accepts no object.
    """
    exposed = tool.name if name is None else name
    if not is_valid_tool_name(exposed):
        raise ConfigError(
            f"tool name {exposed!r} is not valid: it must match {TOOL_NAME_PATTERN.pattern}; "
            "ToolIndex gives tools valid names"
        )
    try:
        parameters = normalize_schema(tool.input_schema, max_ref_depth=max_ref_depth)
    except ConfigError as exc:
        raise ConfigError(f"tool {tool.name!r}: {exc}") from exc
    strict_schema = make_strict(parameters) if strict else None
    if strict_schema is not None:
        return _openai_tool(exposed, _description(tool), strict_schema, True)
    return _openai_tool(exposed, _description(tool), parameters, False)


def openai_tool_to_mcp(tool: Mapping[str, Any]) -> Tool:
    """Read an OpenAI-format tool the program hands in as an MCP :class:`Tool`.

    Accepted forms: ``{"type": "function", "function": {"name", "description",
    "parameters"}}`` (chat completions), the flat ``{"type": "function",
    "name", ...}`` (responses API) and the bare ``{"name", "description",
    "parameters"}``. A missing ``parameters`` means no arguments. Anything else
    raises :class:`~opex_trio.errors.ConfigError` naming the tool.
    """
    if not isinstance(tool, Mapping):
        raise ConfigError(f"an OpenAI tool must be a dict, got {type(tool).__name__}")
    label = _label(tool)
    kind = tool.get("type", "function")
    if kind != "function":
        raise ConfigError(f"tool {label}: only function tools are supported, got type {kind!r}")
    function = tool.get("function", tool) if "function" in tool else tool
    if not isinstance(function, Mapping):
        raise ConfigError(f"tool {label}: 'function' must be a dict")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"tool {label}: 'name' must be a non-empty string")
    if not is_valid_tool_name(name):
        raise ConfigError(
            f"tool name {name!r} is not valid: it must match {TOOL_NAME_PATTERN.pattern}"
        )
    description = function.get("description")
    if description is not None and not isinstance(description, str):
        raise ConfigError(f"tool {name!r}: 'description' must be a string")
    parameters = function.get("parameters", {"type": "object", "properties": {}})
    if isinstance(parameters, bool):
        parameters = {} if parameters else {"not": {}}
    if not isinstance(parameters, Mapping):
        raise ConfigError(f"tool {name!r}: 'parameters' must be a JSON Schema object")
    return Tool(name=name, input_schema=copy.deepcopy(dict(parameters)), description=description)


def _label(tool: Mapping[str, Any]) -> str:
    function = tool.get("function")
    name = function.get("name") if isinstance(function, Mapping) else tool.get("name")
    return repr(name) if isinstance(name, str) else "(unnamed)"


# --------------------------------------------------------------------------- schema normalization

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


def _dialect(schema: Mapping[str, Any]) -> int:
    uri = schema.get("$schema")
    if not isinstance(uri, str):
        return 2020
    for marker, dialect in (
        ("draft-04", 4),
        ("draft-06", 6),
        ("draft-07", 7),
        ("2019-09", 2019),
    ):
        if marker in uri:
            return dialect
    return 2020


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


def _types(schema: Mapping[str, Any]) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [t for t in kind if isinstance(t, str)]
    return []


def _fill_in(out: dict[str, Any]) -> None:
    """Add what providers insist on and validators do not need."""
    kinds = _types(out)
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
    """
    if schema is True:
        return {"type": "object", "properties": {}}
    if schema is False:
        raise ConfigError("the input schema is false: it accepts no arguments at all")
    if not isinstance(schema, Mapping):
        raise ConfigError(
            f"an input schema must be a JSON object, got {type(schema).__name__}: {schema!r:.80}"
        )
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


# --------------------------------------------------------------------------- strict mode

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
    out (:meth:`ToolRef.call_arguments` takes such keys out again).

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
    result, _ = _strict_or_problem(schema)
    return result


def _strict_or_problem(schema: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    if _types(schema) != ["object"] or "anyOf" in schema:
        return None, "the top level must be a plain object schema"
    try:
        return _strict(schema, _StrictBudget(), 0), ""
    except _NotStrict as exc:
        return None, str(exc)


def _strict(node: Any, budget: _StrictBudget, object_depth: int) -> dict[str, Any]:
    if not isinstance(node, Mapping):
        raise _NotStrict("a boolean subschema")
    kinds = _types(node)
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
        out["type"] = [*_types(out), "null"]
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
    if "type" in schema and "null" not in _types(schema):
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


def _strip_nulls(value: Any, schema: Any) -> Any:
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
                out[key] = _strip_nulls(item, sub) if key in properties else item
            value = out
        branch = _matching_branch(value, schema)
        if branch is not None:
            value = _strip_nulls(value, branch)
        return value
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            return [_strip_nulls(v, items) for v in value]
        branch = _matching_branch(value, schema)
        if branch is not None:
            return _strip_nulls(value, branch)
    return value


def _matching_branch(value: Any, schema: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first ``anyOf`` branch that looks made for ``value``, by JSON type and keys."""
    branches = schema.get("anyOf")
    if not isinstance(branches, list):
        return None
    want = "object" if isinstance(value, dict) else "array"
    for branch in branches:
        if not isinstance(branch, Mapping) or want not in _types(branch):
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
