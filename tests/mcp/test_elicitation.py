"""Elicitation: answers checked against the schema, defaults, and the URL-required error."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

import opex_trio
from opex_trio.errors import McpError, RequestTimeoutError, UrlElicitationRequiredError
from opex_trio.mcp.client import ClientOptions, McpClient
from opex_trio.mcp.elicitation import (
    check_answer,
    complete_url_elicitations,
    defaults_of,
    retry_after_url_elicitation,
)
from opex_trio.protocol.types import ElicitParams
from opex_trio.testing.mcp_server import McpTestServer, ToolContext, _RpcError, builtin_server
from tests.mcp.support import BOUND
from tests.mcp.test_real_servers import client_for

FORM = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 2, "default": "Ada"},
        "email": {"type": "string", "format": "email"},
        "age": {"type": "integer", "minimum": 0, "maximum": 150, "default": 36},
        "agree": {"type": "boolean"},
        "color": {"type": "string", "oneOf": [{"const": "#f00", "title": "Red"}]},
        "tags": {
            "type": "array",
            "maxItems": 2,
            "items": {"type": "string", "enum": ["a", "b", "c"]},
        },
        "born": {"type": "string", "format": "date"},
    },
    "required": ["name"],
}


def test_check_answer_follows_the_restricted_schema() -> None:
    good = {
        "name": "Ada",
        "email": "a@b.io",
        "age": 36,
        "agree": True,
        "color": "#f00",
        "tags": ["a", "c"],
        "born": "1815-12-10",
    }
    assert check_answer(FORM, good) is None
    assert check_answer(None, {"anything": 1}) is None
    bad = {
        "the required field 'name' is missing": {"age": 3},
        "the field 'name' has the wrong length": {"name": "A"},
        "the field 'email' is not a valid email": {"name": "Ada", "email": "nope"},
        "the field 'age' must be an integer": {"name": "Ada", "age": 3.5},
        "the field 'age' must be between 0 and 150": {"name": "Ada", "age": 151},
        "the field 'age' must be a integer": {"name": "Ada", "age": True},
        "the field 'agree' must be true or false": {"name": "Ada", "agree": "yes"},
        "the field 'color' must be one of ['#f00']": {"name": "Ada", "color": "red"},
        "the field 'tags' has choices not offered: ['z']": {"name": "Ada", "tags": ["z"]},
        "the field 'born' is not a valid date": {"name": "Ada", "born": "10/12/1815"},
        "the field 'extra' was not asked for": {"name": "Ada", "extra": 1},
    }
    for reason, answer in bad.items():
        assert check_answer(FORM, answer) == reason
    assert check_answer(FORM, ["Ada"]) == "the answer must be an object, got list"
    assert defaults_of(FORM) == {"name": "Ada", "age": 36}


@asynccontextmanager
async def connected(
    server: McpTestServer, options: ClientOptions | None = None
) -> AsyncIterator[McpClient]:
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            async with McpClient(server.in_process(nursery), name="mem", options=options) as client:
                yield client
            nursery.cancel_scope.cancel()


async def test_a_bad_answer_is_not_sent(caplog: pytest.LogCaptureFixture) -> None:
    server = builtin_server()

    @server.tool()
    async def ask(args: Mapping[str, Any], ctx: ToolContext) -> str:
        answer = await ctx.request(
            "elicitation/create", {"message": "Who?", "requestedSchema": FORM}
        )
        return json.dumps(answer)

    answers = iter([{"age": 3}, {"name": "Ada"}])

    async def elicit(params: ElicitParams) -> dict[str, Any]:
        return {"action": "accept", "content": next(answers)}

    async with connected(server, ClientOptions(elicitation_handler=elicit)) as client:
        refused = await client.call_tool("ask")
        assert refused.is_error
        assert "does not match the requested schema: the required field 'name'" in refused.text
        accepted = await client.call_tool("ask")
        assert json.loads(accepted.text) == {"action": "accept", "content": {"name": "Ada"}}


async def test_the_url_required_error_and_its_retry() -> None:
    server = builtin_server()
    done: set[str] = set()

    @server.tool()
    async def files(args: Mapping[str, Any], ctx: ToolContext) -> str:
        if "e1" not in done:
            raise _RpcError(
                -32042,
                "This request requires more information.",
                {
                    "elicitations": [
                        {
                            "mode": "url",
                            "elicitationId": "e1",
                            "url": "https://example.com/connect?e=e1",
                            "message": "Authorize",
                        }
                    ]
                },
            )
        return "your files"

    opened: list[str] = []

    async def open_url(url: str) -> None:
        opened.append(url)
        done.add("e1")
        # An unknown id first: it is ignored.
        await server.notify_all("notifications/elicitation/complete", {"elicitationId": "zz"})
        await server.notify_all("notifications/elicitation/complete", {"elicitationId": "e1"})

    async with connected(server) as client:
        with pytest.raises(UrlElicitationRequiredError) as info:
            await client.call_tool("files")
        assert isinstance(info.value, McpError) and info.value.code == -32042
        assert info.value.urls == ["https://example.com/connect?e=e1"]
        assert info.value.elicitations[0]["elicitationId"] == "e1"
        assert opex_trio.UrlElicitationRequiredError is UrlElicitationRequiredError

        result = await retry_after_url_elicitation(
            client, lambda: client.call_tool("files"), open_url=open_url, timeout=BOUND
        )
        assert result.text == "your files"
        assert opened == ["https://example.com/connect?e=e1"]


async def test_no_completion_times_out(autojump_clock: Any) -> None:
    error = UrlElicitationRequiredError(
        -32042,
        "needs",
        {"elicitations": [{"mode": "url", "elicitationId": "e9", "url": "https://example.com/x"}]},
    )
    async with connected(builtin_server()) as client:
        start = trio.current_time()
        with pytest.raises(RequestTimeoutError, match="e9"):
            await complete_url_elicitations(client, error, open_url=lambda url: None, timeout=30)
        assert trio.current_time() - start == 30


async def test_server_everything_url_elicitation_error_path(
    everything_stdio_command: list[str],
) -> None:
    asked: list[ElicitParams] = []

    async def elicit(params: ElicitParams) -> dict[str, Any]:
        asked.append(params)
        return {"action": "accept"}

    opened: list[str] = []

    async def person_is_done() -> None:
        await trio.lowlevel.checkpoint()

    options = ClientOptions(elicitation_handler=elicit, elicitation_modes=("form", "url"))
    args = {"url": "https://example.com/login", "errorPath": True}
    with trio.fail_after(BOUND):
        async with client_for(everything_stdio_command, "everything", options) as client:
            await client.list_tools()
            with pytest.raises(UrlElicitationRequiredError) as info:
                await client.call_tool("trigger-url-elicitation", args)
            assert info.value.urls == ["https://modelcontextprotocol.io"]
            assert asked == []
            # Through the helper: the error, the page opened, the person done, the retry.
            other = {"url": "https://example.com/other", "errorPath": True}
            result = await retry_after_url_elicitation(
                client,
                lambda: client.call_tool("trigger-url-elicitation", other),
                open_url=opened.append,
                confirm=person_is_done,
            )
    assert opened == ["https://modelcontextprotocol.io"]
    assert "completed the URL elicitation" in result.text
    # The retry went the request path: an elicitation in URL mode, answered.
    assert [(p.mode, p.url) for p in asked] == [("url", "https://example.com/other")]
