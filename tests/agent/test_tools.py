"""Tool naming and conversion between MCP tools and OpenAI function tools."""

from __future__ import annotations

import ast
import copy
import json
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing.exceptions
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from opex_trio.agent import tools as tools_module
from opex_trio.agent.tools import (
    TOOL_NAME_PATTERN,
    SkippedTool,
    ToolIndex,
    make_strict,
    mcp_tool_to_openai,
    normalize_schema,
    openai_tool_to_mcp,
    sanitize_tool_name,
)
from opex_trio.errors import ConfigError, OpexError, UnknownToolError
from opex_trio.protocol.types import Tool, ToolAnnotations
from opex_trio.testing.strategies import (
    schema_instances,
    strict_friendly_schemas,
    tool_input_schemas,
    tool_names,
    tool_sets,
)

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


# ----------------------------------------------------------------------------- names: examples


def test_valid_unique_names_are_kept() -> None:
    index = ToolIndex([("fs", tool("read_file")), ("git", tool("log"))])
    assert list(index) == ["read_file", "log"]
    assert index["read_file"].server == "fs"
    assert index.resolve("log").original_name == "log"


def test_names_are_sanitized() -> None:
    index = ToolIndex(
        [
            ("fs", tool("files.read")),
            ("web", tool("fetch url")),
            ("x", tool("résumé/parse")),
            ("y", tool("\uff26\uff35\uff2c\uff2c")),
        ]
    )
    assert names_of(index) == {
        ("fs", "files.read"): "files_read",
        ("web", "fetch url"): "fetch_url",
        ("x", "résumé/parse"): "resume_parse",
        ("y", "\uff26\uff35\uff2c\uff2c"): "FULL",
    }


def test_sanitize_tool_name() -> None:
    assert sanitize_tool_name("a..b//c") == "a_b_c"
    assert sanitize_tool_name("naïve-café") == "naive-cafe"
    assert sanitize_tool_name("検索") == "_"
    assert sanitize_tool_name("") == ""
    assert sanitize_tool_name("ok_name-1") == "ok_name-1"


def test_collisions_across_servers_get_the_server_prefix() -> None:
    index = ToolIndex([("fs", tool("search")), ("web", tool("search")), ("db", tool("query"))])
    assert names_of(index) == {
        ("fs", "search"): "fs__search",
        ("web", "search"): "web__search",
        ("db", "query"): "query",
    }


def test_a_valid_name_beats_names_that_only_match_once_sanitized() -> None:
    index = ToolIndex([("a", tool("a.b")), ("b", tool("a_b"))])
    assert names_of(index) == {("a", "a.b"): "a__a_b", ("b", "a_b"): "a_b"}


def test_two_sanitized_lookalikes_both_get_prefixes() -> None:
    index = ToolIndex([("a", tool("x.y")), ("b", tool("x/y"))])
    assert names_of(index) == {("a", "x.y"): "a__x_y", ("b", "x/y"): "b__x_y"}


def test_lookalikes_on_one_server_fall_back_to_a_hash() -> None:
    index = ToolIndex([("s", tool("x.y")), ("s", tool("x/y"))])
    names = names_of(index)
    assert names[("s", "x.y")].startswith("s__x_y_")
    assert names[("s", "x/y")].startswith("s__x_y_")
    assert len(set(names.values())) == 2
    for name in names.values():
        assert len(name) == len("s__x_y_") + 8


def test_long_names_are_cut_and_hashed() -> None:
    long_name = "very_long_tool_name_" * 5
    index = ToolIndex([("srv", tool(long_name))])
    (name,) = index
    assert len(name) == 64
    assert name.startswith("srv__very_long_tool_name_")
    assert TOOL_NAME_PATTERN.match(name)
    assert index[name].original_name == long_name


def test_names_without_letters_or_digits_get_a_hash() -> None:
    index = ToolIndex([("jp", tool("検索")), ("jp", tool("")), ("x", tool("..."))])
    names = names_of(index)
    assert names[("jp", "検索")].startswith("jp__tool_")
    assert names[("jp", "")].startswith("jp__tool_")
    assert names[("x", "...")].startswith("x__tool_")
    assert len(set(names.values())) == 3


def test_server_ids_are_sanitized_in_prefixes() -> None:
    index = ToolIndex([("github.com/me", tool("search")), ("", tool("search"))])
    assert names_of(index) == {
        ("github.com/me", "search"): "github_com_me__search",
        ("", "search"): "server__search",
    }


def test_custom_tools_keep_their_names_and_win_collisions() -> None:
    custom = {"type": "function", "function": {"name": "search", "parameters": OBJECT}}
    index = ToolIndex([("fs", tool("search")), (None, custom)])
    assert names_of(index) == {(None, "search"): "search", ("fs", "search"): "fs__search"}
    assert index["search"].is_custom
    assert not index["fs__search"].is_custom


def test_custom_tools_come_first_in_the_given_order_then_mcp_tools_sorted() -> None:
    index = ToolIndex(
        [
            ("z", tool("b")),
            (None, tool("zeta")),
            ("a", tool("c")),
            (None, tool("alpha")),
            ("a", tool("a")),
        ]
    )
    assert list(index) == ["zeta", "alpha", "a", "c", "b"]
    assert [t["function"]["name"] for t in index.openai_tools()] == list(index)


def test_invalid_custom_tool_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'my tool'"):
        ToolIndex([(None, tool("my tool"))])
    with pytest.raises(ConfigError, match="'x' is given twice"):
        ToolIndex([(None, tool("x")), (None, {"name": "x"})])


def test_bad_entries_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="pair"):
        ToolIndex([tool("x")])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="server id"):
        ToolIndex([(3, tool("x"))])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="server 'fs' must be Tool"):
        ToolIndex([("fs", {"name": "x"})])
    with pytest.raises(ConfigError, match="custom tool must be"):
        ToolIndex([(None, 42)])  # type: ignore[list-item]


def test_a_server_listing_a_name_twice_keeps_the_first() -> None:
    first = tool("x", description="first")
    index = ToolIndex([("s", first), ("s", tool("x", description="second"))])
    assert len(index) == 1
    assert index["x"].tool is first


def test_unknown_names_raise_unknown_tool_error() -> None:
    index = ToolIndex([("fs", tool("read"))])
    with pytest.raises(UnknownToolError) as info:
        index.resolve("write")
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, OpexError)
    assert info.value.name == "write"
    assert str(info.value) == "no tool is named 'write'"
    assert index.get("write") is None
    assert "write" not in index
    with pytest.raises(UnknownToolError, match="server 'fs' offer no tool named 'write'") as info:
        index.name_for("fs", "write")
    assert info.value.server == "fs"
    with pytest.raises(UnknownToolError, match="custom tools"):
        index.name_for(None, "read")


def test_tools_whose_schema_accepts_no_object_are_skipped() -> None:
    index = ToolIndex([("s", tool("bad", {"type": "string"})), ("s", tool("good"))])
    assert list(index) == ["good"]
    assert index.skipped == (
        SkippedTool("s", "bad", "the input schema has type 'string'; tool arguments are an object"),
    )
    with pytest.raises(ConfigError, match="custom tool 'bad'"):
        ToolIndex([(None, tool("bad", {"type": "array"}))])


def test_from_servers() -> None:
    index = ToolIndex.from_servers(
        {"a": [tool("x")], "b": [tool("x"), tool("y")]}, [{"name": "y", "parameters": OBJECT}]
    )
    assert names_of(index) == {
        (None, "y"): "y",
        ("a", "x"): "a__x",
        ("b", "x"): "b__x",
        ("b", "y"): "b__y",
    }


def test_repr_lists_the_names() -> None:
    assert repr(ToolIndex([("s", tool("a"))])) == "ToolIndex(['a'])"


# ----------------------------------------------------------------------------- names: properties


@pytest.mark.fuzz
@PROPERTY_SETTINGS
@given(tool_sets())
def test_names_are_valid_unique_and_map_back(entries: list[tuple[str | None, Tool]]) -> None:
    index = ToolIndex(entries)
    origins = {(server, t.name) for server, t in entries}
    assert len(index) == len(origins)
    assert len(set(index)) == len(index)
    for name, ref in index.items():
        assert TOOL_NAME_PATTERN.match(name), name
        assert index.name_for(ref.server, ref.original_name) == name
        assert (ref.server, ref.original_name) in origins
    for server, t in entries:
        ref = index[index.name_for(server, t.name)]
        assert (ref.server, ref.original_name) == (server, t.name)
        if server is None:
            assert index.name_for(None, t.name) == t.name


@pytest.mark.fuzz
@PROPERTY_SETTINGS
@given(tool_sets(), st.randoms(use_true_random=False))
def test_names_do_not_depend_on_input_order(
    entries: list[tuple[str | None, Tool]], rnd: random.Random
) -> None:
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    assert names_of(ToolIndex(entries)) == names_of(ToolIndex(shuffled))


@pytest.mark.fuzz
@PROPERTY_SETTINGS
@given(tool_sets())
def test_a_unique_bare_name_is_used_as_it_is(entries: list[tuple[str | None, Tool]]) -> None:
    index = ToolIndex(entries)
    wanted: dict[str, list[tuple[str | None, str]]] = {}
    for server, t in entries:
        name = t.name if server is None else sanitize_tool_name(t.name)
        wanted.setdefault(name, []).append((server, t.name))
    for name, claims in wanted.items():
        if len(claims) == 1 and any(c.isalnum() for c in name) and len(name) <= 64:
            assert index.name_for(*claims[0]) == name


@pytest.mark.fuzz
@PROPERTY_SETTINGS
@given(tool_sets(), tool_names())
def test_a_new_server_renames_only_tools_it_collides_with(
    entries: list[tuple[str | None, Tool]], new_name: str
) -> None:
    before = ToolIndex(entries)
    servers = {server for server, _ in entries}
    new_server = "zz_new_server"
    while new_server in servers:
        new_server += "_"
    after = ToolIndex([*entries, (new_server, tool(new_name))])
    new_bare = sanitize_tool_name(new_name)
    new_prefixed = f"{new_server}__{new_bare}"
    old_candidates = set(before)
    for server, t in entries:
        if server is not None:
            bare = sanitize_tool_name(t.name)
            old_candidates |= {bare, f"{sanitize_tool_name(server) or 'server'}__{bare}"}
    if new_bare in old_candidates or new_prefixed in old_candidates:
        event("the new tool collides")
        return
    assert {k: v for k, v in names_of(after).items() if k[0] != new_server} == names_of(before)


# ----------------------------------------------------------------------------- conversion


def test_mcp_tool_to_openai() -> None:
    t = tool(
        "get_weather",
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
        description="Current weather",
    )
    assert mcp_tool_to_openai(t) == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "City name"}},
                "required": ["city"],
            },
        },
    }
    strict = mcp_tool_to_openai(t, name="weather", strict=True)["function"]
    assert strict["name"] == "weather"
    assert strict["strict"] is True
    assert strict["parameters"]["additionalProperties"] is False


def test_mcp_tool_to_openai_without_strict_when_impossible() -> None:
    t = tool("t", {"type": "object", "patternProperties": {"^x": {"type": "string"}}})
    function = mcp_tool_to_openai(t, strict=True)["function"]
    assert "strict" not in function
    assert function["parameters"]["patternProperties"] == {"^x": {"type": "string"}}


def test_description_falls_back_to_titles() -> None:
    assert mcp_tool_to_openai(tool("a", title="Title"))["function"]["description"] == "Title"
    with_annotations = tool("a", annotations=ToolAnnotations(title="From annotations"))
    assert mcp_tool_to_openai(with_annotations)["function"]["description"] == "From annotations"
    assert "description" not in mcp_tool_to_openai(tool("a"))["function"]
    both = tool("a", title="Title", description="Text")
    assert mcp_tool_to_openai(both)["function"]["description"] == "Text"


def test_mcp_tool_to_openai_errors_name_the_tool() -> None:
    with pytest.raises(ConfigError, match=r"'a\.b' is not valid"):
        mcp_tool_to_openai(tool("a.b"))
    with pytest.raises(ConfigError, match="tool 'n': the input schema has type 'string'"):
        mcp_tool_to_openai(tool("n", {"type": "string"}))


def test_openai_tool_to_mcp_forms() -> None:
    params = {"type": "object", "properties": {"q": {"type": "string"}}}
    nested = {
        "type": "function",
        "function": {"name": "s", "description": "d", "parameters": params},
    }
    flat = {"type": "function", "name": "s", "description": "d", "parameters": params}
    bare = {"name": "s", "description": "d", "parameters": params}
    for form in (nested, flat, bare):
        converted = openai_tool_to_mcp(form)
        assert converted == Tool(name="s", input_schema=params, description="d")
        assert converted.input_schema is not params
    assert openai_tool_to_mcp({"name": "n"}).input_schema == {"type": "object", "properties": {}}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([], "must be a dict"),
        ({"type": "web_search"}, "only function tools"),
        ({"type": "function", "function": "x"}, "'function' must be a dict"),
        ({"function": {"description": "d"}}, r"\(unnamed\): 'name' must be a non-empty string"),
        ({"name": ""}, "'name' must be a non-empty string"),
        ({"name": "a b"}, "'a b' is not valid"),
        ({"name": "n", "description": 3}, "tool 'n': 'description' must be a string"),
        ({"name": "n", "parameters": [1]}, "tool 'n': 'parameters' must be a JSON Schema object"),
    ],
)
def test_openai_tool_to_mcp_errors(bad: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        openai_tool_to_mcp(bad)


def test_custom_tool_strict_flag_overrides_the_index() -> None:
    loose = {"type": "object", "properties": {"x": {"type": "string", "minLength": 2}}}
    strict_ok = {"type": "object", "properties": {"x": {"type": "string"}}}
    index = ToolIndex(
        [
            (None, {"name": "a", "parameters": strict_ok, "strict": True}),
            (None, {"name": "b", "parameters": strict_ok, "strict": False}),
            (None, {"name": "c", "parameters": strict_ok}),
            ("s", tool("d", loose)),
        ],
        strict=False,
    )
    assert [ref.strict for ref in index.values()] == [True, False, False, False]
    with pytest.raises(ConfigError, match=r"'a' asks for strict mode.*minLength"):
        ToolIndex([(None, {"name": "a", "parameters": loose, "strict": True})])
    with pytest.raises(ConfigError, match="'strict' must be a boolean"):
        ToolIndex([(None, {"name": "a", "strict": "yes"})])
    strict_index = ToolIndex([("s", tool("d", loose)), ("s", tool("e", strict_ok))], strict=True)
    assert [ref.strict for ref in strict_index.values()] == [False, True]
    assert "strict" not in strict_index["d"].to_openai()["function"]
    assert strict_index["e"].to_openai()["function"]["strict"] is True


def test_call_arguments_drop_nulls_the_tool_would_reject() -> None:
    schema = {
        "type": "object",
        "properties": {
            "q": {"type": "string"},
            "limit": {"type": "integer"},
            "cursor": {"type": ["string", "null"]},
            "opts": {
                "type": "object",
                "properties": {"deep": {"type": "boolean"}, "level": {"enum": [1, 2]}},
            },
            "tags": {
                "type": "array",
                "items": {"type": "object", "properties": {"k": {"type": "string"}}},
            },
        },
        "required": ["q"],
    }
    index = ToolIndex([("s", tool("t", schema))], strict=True)
    ref = index["t"]
    assert ref.strict
    sent = {
        "q": "x",
        "limit": None,
        "cursor": None,
        "opts": {"deep": None, "level": None},
        "tags": [{"k": None}],
    }
    assert ref.call_arguments(sent) == {"q": "x", "cursor": None, "opts": {}, "tags": [{}]}
    assert jsonschema.Draft202012Validator(schema).is_valid(ref.call_arguments(sent))
    plain = ToolIndex([("s", tool("t", schema))])["t"]
    assert plain.call_arguments(sent) == sent
    assert plain.call_arguments(sent) is not sent


def test_to_openai_returns_fresh_dicts() -> None:
    ref = ToolIndex([("s", tool("t"))])["t"]
    first = ref.to_openai()
    first["function"]["parameters"]["properties"]["x"] = {}
    assert ref.to_openai()["function"]["parameters"] == {"type": "object", "properties": {}}


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


# ----------------------------------------------------------------------------- schemas: properties


def draw_instances(data: st.DataObject, schema: Any, count: int = 4) -> list[Any]:
    return [data.draw(schema_instances(schema), label="instance") for _ in range(count)]


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


@pytest.mark.fuzz
@PROPERTY_SETTINGS
@given(tool_input_schemas(), tool_names())
def test_mcp_tool_to_openai_never_fails_on_object_schemas(
    schema: dict[str, Any], name: str
) -> None:
    index = ToolIndex([("s", Tool(name=name, input_schema=schema))], strict=True)
    for converted in index.openai_tools():
        function = converted["function"]
        assert TOOL_NAME_PATTERN.match(function["name"])
        jsonschema.Draft202012Validator.check_schema(function["parameters"])
        json.dumps(converted)


# ----------------------------------------------------------------------------- layering


def test_tools_module_imports_only_what_the_agent_layer_allows() -> None:
    source = Path(tools_module.__file__).read_text()
    allowed = {
        "__future__",
        "copy",
        "hashlib",
        "json",
        "re",
        "unicodedata",
        "collections",
        "typing",
        "urllib",
        "attrs",
    }
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name.split(".")[0] in allowed, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert node.module in ("errors", "protocol.types", "mcp.naming"), node.module
            else:
                assert node.module is not None
                assert node.module.split(".")[0] in allowed, node.module


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
