"""A tool schema's ``$schema`` dialect: the ones this client reads, and the ones it reports."""

from __future__ import annotations

from typing import Any

import pytest

from opex_trio.agent.tools import SkippedTool, ToolIndex, normalize_schema
from opex_trio.errors import ConfigError
from opex_trio.protocol.dialects import SUPPORTED_DIALECTS, dialect_of, unsupported_dialect
from opex_trio.protocol.types import Tool

BODY: dict[str, Any] = {
    "type": "object",
    "properties": {"n": {"type": "integer"}},
    "required": ["n"],
}

UNSUPPORTED = [
    "https://spec.openapis.org/oas/3.1/dialect/base",
    "http://json-schema.org/draft-03/schema#",
    "http://json-schema.org/schema#",
    # A known draft's name on another host is not that draft.
    "https://example.com/draft-07/schema#",
    "https://json-schema.org/draft/2020-12/schema?x=1",
    "not a uri at all",
    7,
]

SUPPORTED = {
    None: "2020-12",
    "https://json-schema.org/draft/2020-12/schema": "2020-12",
    "https://json-schema.org/draft/2020-12/schema#": "2020-12",
    "http://json-schema.org/draft/2019-09/schema": "2019-09",
    "http://json-schema.org/draft-07/schema#": "draft-07",
    "https://json-schema.org/draft-07/schema": "draft-07",
    "http://json-schema.org/draft-06/schema#": "draft-06",
    "http://json-schema.org/draft-04/schema#": "draft-04",
}


def with_dialect(uri: Any) -> dict[str, Any]:
    return dict(BODY) if uri is None else {"$schema": uri, **BODY}


@pytest.mark.parametrize("uri", list(SUPPORTED))
def test_the_supported_dialects_are_recognised_and_read(uri: str | None) -> None:
    schema = with_dialect(uri)
    assert dialect_of(schema) == SUPPORTED[uri]
    assert SUPPORTED[uri] in SUPPORTED_DIALECTS
    assert unsupported_dialect(schema) is None
    out = normalize_schema(schema)
    assert out["properties"] == BODY["properties"] and "$schema" not in out


@pytest.mark.parametrize("uri", UNSUPPORTED)
def test_an_unsupported_dialect_is_an_error_naming_it_not_read_as_2020_12(uri: Any) -> None:
    schema = with_dialect(uri)
    assert dialect_of(schema) is None
    with pytest.raises(ConfigError) as info:
        normalize_schema(schema)
    message = str(info.value)
    assert repr(uri) in message and "does not support" in message
    assert "2020-12" in message  # the supported ones are listed


def test_a_tool_with_an_unsupported_dialect_is_left_out_of_the_index_with_the_reason() -> None:
    uri = UNSUPPORTED[0]
    tools = [
        Tool(name="vendor", input_schema=with_dialect(uri)),
        Tool(name="plain", input_schema=dict(BODY)),
    ]
    index = ToolIndex.from_servers({"srv": tools})
    assert list(index) == ["plain"]
    (skipped,) = index.skipped
    assert isinstance(skipped, SkippedTool)
    assert (skipped.server, skipped.name) == ("srv", "vendor")
    assert repr(uri) in skipped.reason


def test_a_custom_tool_with_an_unsupported_dialect_is_refused() -> None:
    custom = {
        "type": "function",
        "function": {"name": "mine", "parameters": with_dialect(UNSUPPORTED[1])},
    }
    with pytest.raises(ConfigError, match=r"custom tool 'mine'.*draft-03"):
        ToolIndex.from_servers({}, [custom])
