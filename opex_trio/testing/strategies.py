"""Hypothesis strategies for tool names, MCP tools, JSON Schemas and their instances.

For property tests of code that names, converts or validates tools, ours and
users' alike. Importing this module needs ``hypothesis`` (a test dependency).

* :func:`tool_names` and :func:`server_ids` produce the names MCP servers use
  in the wild and the ones that break naive code: dots, slashes, spaces,
  unicode, empty strings, names over 64 characters, names equal after
  sanitizing (``a.b`` and ``a_b``).
* :func:`tool_sets` draws ``(server_id, tool)`` lists with collisions across
  servers and custom tools (``server_id`` ``None``) among them.
* :func:`tool_input_schemas` draws schema documents in several dialects
  (2020-12 with and without ``$schema``, 2019-09, draft-07, draft-04) with
  ``$defs``/``definitions``, references (recursive, dangling, remote, with
  siblings, to JSON pointers), composition, arrays without ``items``, objects
  without ``properties``, boolean subschemas, property names that look like
  keywords, formats, descriptions and unknown keywords.
* :func:`strict_friendly_schemas` draws schemas within OpenAI's strict subset.
* :func:`schema_instances` draws instances meant to satisfy a schema. It is
  exact for the common keywords (types, ``enum``, ``const``, objects, arrays,
  string and number bounds, ``anyOf``, references) and approximate for the
  rest (``allOf``, ``oneOf``, ``not``, conditionals), so a test checks each
  instance against the original schema before using it.
"""

from __future__ import annotations

from typing import Any, Final

from hypothesis import strategies as st

from ..protocol.types import Tool
from ._instances import InstanceWriter

__all__ = [
    "DIALECTS",
    "json_values",
    "mcp_tools",
    "schema_instances",
    "server_ids",
    "strict_friendly_schemas",
    "tool_input_schemas",
    "tool_names",
    "tool_sets",
]

DIALECTS: Final[dict[str, str | None]] = {
    "2020-12 (implicit)": None,
    "2020-12": "https://json-schema.org/draft/2020-12/schema",
    "2019-09": "https://json-schema.org/draft/2019-09/schema",
    "draft-07": "http://json-schema.org/draft-07/schema#",
    "draft-04": "http://json-schema.org/draft-04/schema#",
}
"""The dialects :func:`tool_input_schemas` writes, by name, with their ``$schema`` URI."""

# ---------------------------------------------------------------- names

_NAME_PIECES: Final = (
    "search",
    "read_file",
    "read.file",
    "read-file",
    "a",
    "A",
    "b",
    "x/y",
    "fs.read",
    "résumé",
    "naïve",
    "検索",
    "🙂",
    " ",
    ".",
    "_",
    "__",
    "-",
    "tool",
    "get user",
    "a_b",
    "a.b",
    "\uff26\uff35\uff2c\uff2c",  # fullwidth letters, which NFKD folds to ASCII
)


def tool_names() -> st.SearchStrategy[str]:
    """Tool names as servers send them, valid for providers or not."""
    return st.one_of(
        st.lists(st.sampled_from(_NAME_PIECES), min_size=1, max_size=4).map("".join),
        st.text(alphabet="ab._-/ é", max_size=5),
        st.text(max_size=70),
        st.from_regex(r"[a-z_.]{58,90}", fullmatch=True),
        st.from_regex(r"[a-zA-Z0-9_-]{1,64}", fullmatch=True),
    )


def server_ids() -> st.SearchStrategy[str]:
    """Server ids as programs choose them."""
    return st.one_of(
        st.sampled_from(
            ["fs", "git", "github.com/x", "my server", "a.b", "a_b", "", "サーバー", "S" * 40]
        ),
        st.text(max_size=20),
        st.from_regex(r"[a-z]{1,8}", fullmatch=True),
    )


def mcp_tools(
    names: st.SearchStrategy[str] | None = None,
    schemas: st.SearchStrategy[dict[str, Any]] | None = None,
) -> st.SearchStrategy[Tool]:
    """MCP tools with names from ``names`` and input schemas from ``schemas``."""
    return st.builds(
        lambda name, schema, description, title: Tool(
            name=name, input_schema=schema, description=description, title=title
        ),
        names if names is not None else tool_names(),
        schemas if schemas is not None else st.just({"type": "object"}),
        st.none() | st.text(max_size=30),
        st.none() | st.text(max_size=10),
    )


@st.composite
def tool_sets(
    draw: st.DrawFn, *, max_tools: int = 12, custom: bool = True
) -> list[tuple[str | None, Tool]]:
    """A list of ``(server_id, tool)``; ``None`` marks the program's own tools.

    Names repeat across servers, collide after sanitizing and with custom
    tools; one server never lists a name twice, nor do custom tools.
    """
    servers = draw(st.lists(server_ids(), min_size=1, max_size=4, unique=True))
    names = draw(st.lists(tool_names(), min_size=1, max_size=6))
    picks = draw(
        st.lists(
            st.tuples(st.sampled_from(servers), st.sampled_from(names) | tool_names()),
            max_size=max_tools,
            unique=True,
        )
    )
    entries: list[tuple[str | None, Tool]] = [
        (server, Tool(name=name, input_schema={"type": "object"})) for server, name in picks
    ]
    if custom:
        valid = st.from_regex(r"[a-zA-Z0-9_-]{1,64}", fullmatch=True)
        clashing = st.sampled_from(["search", "read_file", "a_b", "fs__read_file", "tool"])
        customs = draw(st.lists(valid | clashing, max_size=3, unique=True))
        entries.extend((None, Tool(name=n, input_schema={"type": "object"})) for n in customs)
    return draw(st.permutations(entries))


# ---------------------------------------------------------------- values


def json_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """Any JSON value (finite numbers, no lone surrogates)."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**53), max_value=2**53),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
        ),
        max_leaves=max_leaves,
    )


_SCALARS: Final = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-100, max_value=100),
    st.sampled_from([0.5, -1.25, 3.0]),
    st.sampled_from(["", "a", "red", "green", "x y", "é"]),
)

# ---------------------------------------------------------------- schemas

_PROPERTY_NAMES: Final = (
    "a",
    "b",
    "name",
    "count",
    "x.y",
    "$ref",
    "$defs",
    "type",
    "properties",
    "items",
    "🙂",
    "",
)
_DEF_NAMES: Final = ("A", "B", "Node", "a/b", "c~d", "sp ace")
_PATTERNS: Final = ("^[a-z]+$", "^[0-9]{2,4}$", "ab", "^(foo|bar)$", "^\\w+@\\w+\\.com$")
_FORMATS: Final = ("date-time", "email", "uuid", "uri", "my-format")
_FOREIGN: Final = (
    ("x-internal", {"$ref": "#/nowhere"}),
    ("nullable", True),
    ("examples", [1, "a"]),
    ("$comment", "a comment"),
    ("deprecated", False),
)


def _pointer_token(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1").replace(" ", "%20")


class _SchemaWriter:
    """Draws one schema document; see :func:`tool_input_schemas`."""

    def __init__(
        self, draw: st.DrawFn, dialect: str, max_depth: int, def_names: list[str], strict: bool
    ) -> None:
        self.draw = draw
        self.dialect = dialect
        self.max_depth = max_depth
        self.def_names = def_names
        self.strict = strict
        self.old = dialect in ("draft-07", "draft-04")
        self.draft4 = dialect == "draft-04"
        self.defs_key = "definitions" if self.old else "$defs"

    def flip(self, p: float = 0.5) -> bool:
        return self.draw(st.floats(0, 1)) < p

    def pick(self, options: Any) -> Any:
        return self.draw(st.sampled_from(list(options)))

    def annotate(self, node: dict[str, Any]) -> dict[str, Any]:
        if self.flip(0.3):
            node["description"] = self.draw(st.text(max_size=12))
        if not self.strict and self.flip(0.08):
            key, value = self.pick(_FOREIGN)
            node[key] = value
        return node

    # owner: index of the definition being written (-1 for the root). free: the
    # position is inside an optional part of the instance (a property that is
    # not required, array items, ...). Elsewhere a reference may only lead to a
    # later definition, so that every schema has finite instances and no
    # reference cycle applies a schema to the same instance over and over
    # (which validators cannot finish). Keywords applied in place (anyOf, not,
    # if, ...) pass ``free`` on unchanged.
    def schema(self, depth: int, owner: int, free: bool) -> Any:
        if self.strict:
            return self.strict_schema(depth)
        if depth >= self.max_depth:
            return self.leaf(owner, free)
        kind = self.pick(
            ["leaf", "leaf", "object", "object", "array", "anyOf", "ref", "combinator", "misc"]
        )
        if kind == "leaf":
            return self.leaf(owner, free)
        if kind == "object":
            return self.object(depth, owner)
        if kind == "array":
            return self.array(depth, owner)
        if kind == "anyOf":
            branches = [self.schema(depth + 1, owner, free) for _ in range(self.pick([1, 2, 3]))]
            return self.annotate({"anyOf": branches})
        if kind == "ref":
            return self.ref_with_siblings(depth, owner, free)
        if kind == "combinator":
            return self.combinator(depth, owner, free)
        return self.misc(depth, owner, free)

    def leaf(self, owner: int, free: bool) -> Any:
        choice = self.pick(
            [
                "string",
                "string",
                "number",
                "integer",
                "boolean",
                "null",
                "enum",
                "const",
                "any",
                "bool",
                "nullable",
                "bare-array",
                "bare-object",
                "ref",
            ]
        )
        if choice == "string":
            node: dict[str, Any] = {"type": "string"}
            if self.flip(0.3):
                node["minLength"] = self.pick([0, 1, 2])
            if self.flip(0.3):
                node["maxLength"] = self.pick([3, 5, 10])
            if self.flip(0.2):
                node["pattern"] = self.pick(_PATTERNS)
            if self.flip(0.2):
                node["format"] = self.pick(_FORMATS)
            return self.annotate(node)
        if choice in ("number", "integer"):
            node = {"type": choice}
            low = self.pick([-10, 0, 1.5, None, None])
            high = self.pick([5, 20, 7.5, None, None])
            if low is not None:
                node["minimum"] = low
            if high is not None and (low is None or high > low + 2):
                if self.draft4 and self.flip(0.5):
                    node["maximum"] = high
                    node["exclusiveMaximum"] = True
                elif not self.draft4 and self.flip(0.3):
                    node["exclusiveMaximum"] = high
                else:
                    node["maximum"] = high
            if self.flip(0.2):
                node["multipleOf"] = self.pick([1, 2, 0.5])
            return self.annotate(node)
        if choice in ("boolean", "null"):
            return self.annotate({"type": choice})
        if choice == "enum":
            values = self.draw(st.lists(_SCALARS, min_size=1, max_size=4, unique_by=repr))
            node = {"enum": values}
            return self.annotate(node)
        if choice == "const" and not self.draft4:
            return self.annotate({"const": self.draw(_SCALARS)})
        if choice == "bool" and not self.draft4:
            return self.flip(0.8)
        if choice == "nullable":
            return self.annotate({"type": [self.pick(["string", "integer", "object"]), "null"]})
        if choice == "bare-array":
            return self.annotate({"type": "array"})
        if choice == "bare-object":
            return self.annotate({"type": "object"})
        if choice == "ref":
            return self.ref(owner, free)
        return self.annotate({})

    def ref(self, owner: int, free: bool) -> dict[str, Any]:
        allowed = (
            list(range(len(self.def_names)))
            if free
            else list(range(owner + 1, len(self.def_names)))
        )
        options: list[str] = [
            f"#/{self.defs_key}/{_pointer_token(self.def_names[i])}" for i in allowed
        ]
        if free:
            options.append("#")
        if free and owner >= 0:
            options.append("#/properties/a")
        if self.flip(0.1):
            options += [f"#/{self.defs_key}/Missing", "https://example.com/schema.json", "#nowhere"]
        if not options:
            return self.annotate({"type": "string"})
        return {"$ref": self.pick(options)}

    def ref_with_siblings(self, depth: int, owner: int, free: bool) -> dict[str, Any]:
        node = self.ref(owner, free)
        if "$ref" not in node:
            return node
        siblings = self.pick(["none", "annotation", "constraint", "object"])
        if siblings == "annotation":
            node["description"] = "see definition"
        elif siblings == "constraint":
            node.update(self.pick([{"type": "object"}, {"minProperties": 1}, {"maxLength": 4}]))
        elif siblings == "object":
            node["properties"] = {"extra": self.schema(depth + 1, owner, True)}
            if self.flip(0.5):
                node["additionalProperties"] = self.flip(0.5)
        return node

    def object(self, depth: int, owner: int) -> dict[str, Any]:
        node: dict[str, Any] = {}
        if self.flip(0.85):
            node["type"] = "object"
        names = self.draw(st.lists(st.sampled_from(_PROPERTY_NAMES), max_size=4, unique=True))
        required = [n for n in names if self.flip(0.5)]
        if names or self.flip(0.5):
            node["properties"] = {
                n: self.schema(depth + 1, owner, n not in required) for n in names
            }
        if required:
            node["required"] = required
        if self.flip(0.1) and not self.draft4:
            node.setdefault("required", []).append("ghost")  # required without a schema
        extra = self.pick(["absent", "absent", "false", "true", "schema"])
        if extra == "false":
            node["additionalProperties"] = False
        elif extra == "true" and not self.draft4:
            node["additionalProperties"] = True
        elif extra == "schema":
            node["additionalProperties"] = self.schema(depth + 1, owner, True)
        if self.flip(0.1):
            node["patternProperties"] = {"^x_": self.schema(depth + 1, owner, True)}
        if self.flip(0.1):
            node["minProperties"] = 1
        if self.flip(0.1) and not self.draft4:
            node["propertyNames"] = {"maxLength": 8}
        if self.flip(0.1) and len(names) >= 2:
            if self.dialect in ("draft-07", "draft-04"):
                node["dependencies"] = {names[0]: [names[1]]}
            else:
                node["dependentRequired"] = {names[0]: [names[1]]}
        if self.flip(0.05) and self.dialect not in ("draft-07", "draft-04"):
            node["unevaluatedProperties"] = False
        return self.annotate(node)

    def array(self, depth: int, owner: int) -> dict[str, Any]:
        node: dict[str, Any] = {"type": "array"} if self.flip(0.9) else {}
        form = self.pick(["items", "items", "none", "tuple"])
        min_items = self.pick([0, 0, 1])
        if form == "items":
            node["items"] = self.schema(depth + 1, owner, min_items == 0)
        elif form == "tuple":
            tuple_schemas = [self.schema(depth + 1, owner, True) for _ in range(self.pick([1, 2]))]
            if self.dialect in ("draft-07", "draft-04", "2019-09"):
                node["items"] = tuple_schemas
                if self.flip(0.5):
                    node["additionalItems"] = self.schema(depth + 1, owner, True)
            else:
                node["prefixItems"] = tuple_schemas
                if self.flip(0.5):
                    node["items"] = self.schema(depth + 1, owner, True)
        if min_items:
            node["minItems"] = min_items
        if self.flip(0.3):
            node["maxItems"] = self.pick([2, 3])
        if self.flip(0.1):
            node["uniqueItems"] = True
        if self.flip(0.1) and not self.draft4:
            node["contains"] = self.leaf(owner, False)
            if self.flip(0.5) and self.dialect not in ("draft-07", "draft-04"):
                node["maxContains"] = 2
        return self.annotate(node)

    def combinator(self, depth: int, owner: int, free: bool) -> dict[str, Any]:
        kind = self.pick(["allOf", "oneOf", "not", "if"])
        if kind == "allOf":
            return self.annotate(
                {"allOf": [self.schema(depth + 1, owner, free) for _ in range(self.pick([1, 2]))]}
            )
        if kind == "oneOf":
            return self.annotate(
                {"oneOf": [self.schema(depth + 1, owner, free) for _ in range(self.pick([1, 2]))]}
            )
        if kind == "not":
            return self.annotate({"not": self.schema(depth + 1, owner, free)})
        if self.dialect == "draft-04":
            return self.annotate({})
        node: dict[str, Any] = {"if": self.schema(depth + 1, owner, free)}
        if self.flip(0.8):
            node["then"] = self.schema(depth + 1, owner, free)
        if self.flip(0.6):
            node["else"] = self.schema(depth + 1, owner, free)
        return self.annotate(node)

    def misc(self, depth: int, owner: int, free: bool) -> Any:
        kind = self.pick(["type-list", "foreign-keyword", "typeless-object"])
        if kind == "type-list":
            return self.annotate({"type": ["string", "number"], "minLength": 1})
        if kind == "foreign-keyword":
            # A keyword of another dialect: its own validators ignore it.
            other = self.pick(
                [
                    {"prefixItems": [{"type": "string"}]},
                    {"dependentRequired": {"a": ["b"]}},
                    {"dependencies": {"a": ["b"]}},
                    {"$dynamicRef": "#meta"},
                    {"additionalItems": False},
                ]
            )
            return self.annotate(other)
        return self.annotate(
            {"properties": {"a": self.schema(depth + 1, owner, False)}, "required": ["a"]}
        )

    # -- the strict subset

    def strict_schema(self, depth: int) -> dict[str, Any]:
        kind = self.pick(["string", "number", "boolean", "enum", "object", "array", "anyOf"])
        if depth >= self.max_depth and kind in ("object", "array", "anyOf"):
            kind = "string"
        node: dict[str, Any]
        if kind == "string":
            node = {"type": "string"}
            if self.flip(0.2):
                node["pattern"] = self.pick(_PATTERNS)
            if self.flip(0.2):
                node["format"] = self.pick(_FORMATS)
        elif kind == "number":
            node = {"type": self.pick(["number", "integer"])}
            if self.flip(0.3):
                node["minimum"] = 0
            if self.flip(0.3):
                node["maximum"] = 50
        elif kind == "boolean":
            node = {"type": self.pick(["boolean", ["boolean", "null"]])}
        elif kind == "enum":
            values = self.draw(
                st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=3, unique=True)
            )
            node = {"type": "string", "enum": values} if self.flip(0.5) else {"enum": values}
        elif kind == "object":
            names = self.draw(st.lists(st.sampled_from(_PROPERTY_NAMES), max_size=4, unique=True))
            node = {
                "type": "object",
                "properties": {n: self.strict_schema(depth + 1) for n in names},
            }
            required = [n for n in names if self.flip(0.5)]
            if required:
                node["required"] = required
            if self.flip(0.5):
                node["additionalProperties"] = False
        elif kind == "array":
            node = {"type": "array", "items": self.strict_schema(depth + 1)}
            if self.flip(0.3):
                node["maxItems"] = 3
        else:
            node = {"anyOf": [self.strict_schema(depth + 1) for _ in range(self.pick([1, 2]))]}
        if self.flip(0.3):
            node["description"] = self.draw(st.text(max_size=10))
        if self.flip(0.1):
            node["default"] = None
        return node


@st.composite
def tool_input_schemas(
    draw: st.DrawFn,
    *,
    dialects: Any = None,
    max_depth: int = 3,
) -> dict[str, Any]:
    """A tool input schema document, usually an object schema, in one of :data:`DIALECTS`.

    ``dialects`` limits the dialects drawn (names from :data:`DIALECTS`).
    """
    dialect = draw(st.sampled_from(list(dialects or DIALECTS)))
    def_names = draw(st.lists(st.sampled_from(_DEF_NAMES), max_size=3, unique=True))
    writer = _SchemaWriter(draw, dialect, max_depth, def_names, strict=False)
    shape = writer.pick(["object", "object", "object", "root-ref", "loose", "any-of"])
    if shape == "root-ref" and def_names:
        root: dict[str, Any] = {"$ref": f"#/{writer.defs_key}/{_pointer_token(def_names[0])}"}
    elif shape == "loose":
        root = writer.schema(1, -1, False)
        root = root if isinstance(root, dict) else {}
    elif shape == "any-of":
        root = {"anyOf": [writer.object(1, -1), writer.object(1, -1)]}
    else:
        root = writer.object(0, -1)
    if def_names:
        defs = {}
        for index, name in enumerate(def_names):
            if shape == "root-ref" and index == 0:
                defs[name] = writer.object(1, 0)
            else:
                defs[name] = writer.schema(1, index, False)
        root[writer.defs_key] = defs
    uri = DIALECTS[dialect]
    if uri is not None:
        root = {"$schema": uri, **root}
    return root


@st.composite
def strict_friendly_schemas(draw: st.DrawFn, *, max_depth: int = 3) -> dict[str, Any]:
    """An object schema that OpenAI's strict mode can express once made strict."""
    writer = _SchemaWriter(draw, "2020-12 (implicit)", max_depth, [], strict=True)
    root: dict[str, Any] = {"type": "object", "properties": {}}
    for name in draw(st.lists(st.sampled_from(_PROPERTY_NAMES), max_size=5, unique=True)):
        root["properties"][name] = writer.strict_schema(1)
    required = [n for n in root["properties"] if writer.flip(0.5)]
    if required:
        root["required"] = required
    return root


# ---------------------------------------------------------------- instances


@st.composite
def schema_instances(draw: st.DrawFn, schema: Any) -> Any:
    """A value meant to satisfy ``schema``; check it with a validator before relying on it.

    Local references (``#``, ``#/$defs/...``, JSON pointers) are followed a
    bounded number of times; a schema that needs more is rejected as a
    Hypothesis example.
    """
    return InstanceWriter(draw, schema, json_values).value(schema, 0, 0)
