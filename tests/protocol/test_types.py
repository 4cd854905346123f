"""MCP types: loading, unknown fields kept, errors that name the field."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opex_trio.errors import ProtocolError
from opex_trio.protocol import types as T

# Example folders of the specification and the type that loads each.
EXAMPLE_TYPES: dict[str, type[T.McpType]] = {
    "BlobResourceContents": T.BlobResourceContents,
    "CallToolResult": T.CallToolResult,
    "CancelledNotificationParams": T.CancelledParams,
    "CompleteResult": T.CompleteResult,
    "CreateMessageRequestParams": T.CreateMessageParams,
    "CreateMessageResult": T.CreateMessageResult,
    "ElicitRequestFormParams": T.ElicitParams,
    "EmbeddedResource": T.EmbeddedResource,
    "GetPromptResult": T.GetPromptResult,
    "ImageContent": T.ImageContent,
    "ListPromptsResult": T.ListPromptsResult,
    "ListResourcesResult": T.ListResourcesResult,
    "ListRootsResult": T.ListRootsResult,
    "ListToolsResult": T.ListToolsResult,
    "ProgressNotificationParams": T.ProgressParams,
    "ReadResourceResult": T.ReadResourceResult,
    "Resource": T.Resource,
    "ResourceLink": T.ResourceLink,
    "SamplingMessage": T.SamplingMessage,
    "ServerCapabilities": T.ServerCapabilities,
    "TextContent": T.TextContent,
    "TextResourceContents": T.TextResourceContents,
}


def _without_false_is_error(data: dict[str, Any]) -> dict[str, Any]:
    # ``isError: false`` is the default and is not written back out.
    return {k: v for k, v in data.items() if not (k == "isError" and v is False)}


def test_every_specification_example_loads_and_dumps_back(mcp_spec: Path) -> None:
    root = mcp_spec / "schema" / "2026-07-28" / "examples"
    checked = 0
    for folder, cls in EXAMPLE_TYPES.items():
        for path in sorted((root / folder).glob("*.json")):
            data = json.loads(path.read_text())
            loaded = cls.from_dict(data)
            assert loaded.to_dict() == _without_false_is_error(data), path.name
            checked += 1
    assert checked >= 40


def test_unknown_members_are_kept() -> None:
    tool = T.Tool.from_dict(
        {"name": "t", "inputSchema": {"type": "object"}, "x-vendor": {"a": 1}, "ttlMs": 5}
    )
    assert tool.extra == {"x-vendor": {"a": 1}, "ttlMs": 5}
    assert tool.to_dict()["x-vendor"] == {"a": 1}


def test_unknown_content_types_are_kept_whole() -> None:
    result = T.CallToolResult.from_dict(
        {"content": [{"type": "hologram", "shape": "cube"}, {"type": "text", "text": "hi"}]}
    )
    assert result.content[0] == T.UnknownContent("hologram", {"type": "hologram", "shape": "cube"})
    assert result.text == "hi"
    assert result.to_dict()["content"][0] == {"type": "hologram", "shape": "cube"}


@pytest.mark.parametrize(
    ("cls", "data", "message"),
    [
        (
            T.ListToolsResult,
            {"tools": [{"name": 3}]},
            "ListToolsResult.tools[0].name must be a string",
        ),
        (
            T.ListToolsResult,
            {"tools": [{"name": "x"}]},
            "tools[0] is missing the required member 'inputSchema'",
        ),
        (T.CallToolResult, {"content": "text"}, "CallToolResult.content must be an array"),
        (T.CallToolResult, {"content": [{"text": "no type"}]}, "content[0].type must be a string"),
        (T.CallToolResult, {"isError": "yes"}, "CallToolResult.isError must be a boolean"),
        (T.InitializeResult, [], "InitializeResult must be an object"),
        (T.ProgressParams, {"progressToken": 1, "progress": True}, "progress must be a number"),
    ],
)
def test_wrong_values_name_the_field(cls: type[T.McpType], data: Any, message: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(message)):
        cls.from_dict(data)


def test_tool_helpers() -> None:
    tool = T.Tool.from_dict(
        {
            "name": "n",
            "inputSchema": {"type": "object"},
            "annotations": {"title": "Nice", "idempotentHint": True},
        }
    )
    assert tool.display_name == "Nice"
    assert tool.idempotent and not tool.read_only
    ro = T.Tool.from_dict(
        {"name": "r", "title": "R", "inputSchema": {}, "annotations": {"readOnlyHint": True}}
    )
    assert ro.display_name == "R" and ro.read_only and ro.idempotent


def test_sampling_content_may_be_one_block_or_several() -> None:
    one = T.SamplingMessage.from_dict({"role": "user", "content": {"type": "text", "text": "a"}})
    many = T.SamplingMessage.from_dict(
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    )
    assert isinstance(one.content, T.TextContent)
    assert isinstance(many.content, tuple) and len(many.content) == 2


def test_capabilities_list_changed() -> None:
    caps = T.ServerCapabilities.from_dict({"tools": {"listChanged": True}, "prompts": {}})
    assert caps.list_changed("tools")
    assert not caps.list_changed("prompts")
    assert not caps.list_changed("resources")


text = st.text(max_size=20)
blocks = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, text),
    st.builds(lambda d, m: {"type": "image", "data": d, "mimeType": m}, text, text),
    st.builds(lambda d, m: {"type": "audio", "data": d, "mimeType": m}, text, text),
    st.builds(lambda u, n: {"type": "resource_link", "uri": u, "name": n}, text, text),
    st.builds(lambda u, t: {"type": "resource", "resource": {"uri": u, "text": t}}, text, text),
    st.builds(lambda k, v: {"type": "x-" + k, "v": v}, text, text),
)
results = st.fixed_dictionaries(
    {"content": st.lists(blocks, max_size=5)},
    optional={
        "isError": st.just(True),
        "structuredContent": st.dictionaries(text, text, max_size=3),
        "_meta": st.dictionaries(text, text, max_size=2),
        "x-extra": text,
    },
)


@pytest.mark.fuzz
@given(results)
def test_call_tool_results_round_trip(data: dict[str, Any]) -> None:
    loaded = T.CallToolResult.from_dict(data)
    assert loaded.to_dict() == data
    assert T.CallToolResult.from_dict(loaded.to_dict()) == loaded
