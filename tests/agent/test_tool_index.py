"""ToolIndex: unique, stable, provider-valid names for every tool, and the way back."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from opex_trio.agent import conversion, schema, strict, tools
from opex_trio.agent.tools import (
    TOOL_NAME_PATTERN,
    SkippedTool,
    ToolIndex,
    sanitize_tool_name,
)
from opex_trio.errors import ConfigError, OpexError, UnknownToolError
from opex_trio.protocol.types import Tool
from opex_trio.testing.strategies import (
    tool_names,
    tool_sets,
)

from .support import (
    OBJECT,
    PROPERTY_SETTINGS,
    names_of,
    tool,
)

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
    with pytest.raises(ConfigError, match=r"server 'fs': not a valid MCP tool: .*'inputSchema'"):
        ToolIndex([("fs", {"name": "x"})])
    with pytest.raises(ConfigError, match="server 'fs': an MCP tool must be a Tool or a dict"):
        ToolIndex([("fs", 42)])  # type: ignore[list-item]
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


# ----------------------------------------------------------------------------- layering


def test_tool_modules_import_only_what_the_agent_layer_allows() -> None:
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
    siblings = {"conversion", "schema", "strict"}
    for module in (tools, conversion, schema, strict):
        source = Path(module.__file__ or "").read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] in allowed, alias.name
            elif isinstance(node, ast.ImportFrom):
                if node.level == 2:
                    assert node.module in (
                        "errors",
                        "protocol.types",
                        "protocol.dialects",
                        "mcp.naming",
                    ), node.module
                elif node.level == 1:
                    assert node.module in siblings, node.module
                else:
                    assert node.module is not None
                    assert node.module.split(".")[0] in allowed, node.module
