"""The tools a model may call: their names, their schemas, and where calls to them go.

Theory of operation
-------------------
A model sees tools as OpenAI function tools: a name matching
``^[a-zA-Z0-9_-]{1,64}$`` and a JSON Schema for the arguments. MCP servers
name their tools freely (dots, slashes, unicode, any length), two servers may
offer tools with the same name, and their input schemas use whatever JSON
Schema dialect and features their authors liked. The bridge is four modules,
each with one job; this one holds the index and re-exports the others' public
names, so ``opex_trio.agent.tools`` stays the one place to import them from:

* :mod:`opex_trio.agent.schema`: :func:`normalize_schema` turns any input
  schema into a self-contained object schema that accepts every object the
  original accepts.
* :mod:`opex_trio.agent.strict`: :func:`make_strict` rewrites a normalized
  schema for OpenAI's strict mode, or returns ``None`` when the schema uses
  something strict mode cannot express; the caller then sends the normalized
  schema without ``strict``.
* :mod:`opex_trio.agent.conversion`: one tool from MCP to OpenAI
  (:func:`mcp_tool_to_openai`) and back (:func:`openai_tool_to_mcp`).
* here, :class:`ToolIndex` takes every server's tools and the program's own
  tools, gives each one a unique, stable, provider-valid name, converts it,
  and maps the names the model uses back to ``(server, original name)``.

Names follow the rule of :mod:`opex_trio.mcp.naming` (the session manager's
registry uses the same one): the program's own tools keep their names and win
every collision, an MCP tool keeps its name made valid when nobody else wants
it, then ``server__tool``, then a cut name with a short hash. The same set of
tools always gets the same names, whatever the order.

Nothing here does IO; the functions are pure and the objects immutable.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

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
from .conversion import as_tool, description_of, mcp_tool_to_openai, openai_tool, openai_tool_to_mcp
from .schema import DEFAULT_MAX_REF_DEPTH, normalize_schema
from .strict import make_strict, strict_or_problem, strip_nulls

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
        return openai_tool(self.name, description_of(self.tool), self.parameters, self.strict)

    def call_arguments(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments to send to the tool, given the ones the model produced.

        In strict mode an optional parameter the model leaves out comes as
        ``null``; where the tool's own schema does not accept ``null`` there,
        the key is dropped so the tool sees it as omitted. Otherwise the
        arguments are returned as they are (in a new dict).
        """
        if not self.strict:
            return dict(arguments)
        stripped = strip_nulls(dict(arguments), self.normalized_schema)
        assert isinstance(stripped, dict)
        return stripped


@attrs.frozen
class SkippedTool:
    """An MCP tool left out of a :class:`ToolIndex` because it cannot be offered to a model.

    ``reason`` says why: an input schema that no JSON object can satisfy (tool
    arguments are always an object), or one that declares a JSON Schema
    dialect this client does not support (see :mod:`opex_trio.protocol.dialects`).
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

    ``tools`` is an iterable of ``(server_id, tool)`` pairs. A server's tool
    is a :class:`~opex_trio.protocol.types.Tool` or the dict ``tools/list``
    returns. ``server_id`` is ``None`` for the program's own tools, which may be
    given as a :class:`~opex_trio.protocol.types.Tool` or as an OpenAI tool dict
    (a ``"strict"`` key in such a dict overrides the index's ``strict`` for that
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
            try:
                spec = as_tool(spec)
            except ConfigError as exc:
                raise ConfigError(f"server {server!r}: {exc}") from exc
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
        servers: Mapping[str, Iterable[Tool | Mapping[str, Any]]],
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
        strict_schema, problem = strict_or_problem(entry.normalized)
        if strict_schema is not None:
            return ToolRef(name, entry.server, entry.tool, strict_schema, entry.normalized, True)
        if entry.strict:
            raise ConfigError(
                f"custom tool {entry.tool.name!r} asks for strict mode, "
                f"but its schema cannot be made strict: {problem}"
            )
    return ToolRef(name, entry.server, entry.tool, entry.normalized, entry.normalized, False)
