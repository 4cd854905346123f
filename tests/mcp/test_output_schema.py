"""structuredContent checked against the tool's outputSchema, through the manager and the chat."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest
import trio

from opex_trio import telemetry
from opex_trio.agent.chat import Chat
from opex_trio.errors import ConfigError, ProtocolError
from opex_trio.mcp.manager import ServerOptions, SessionManager
from opex_trio.mcp.output_schema import MISMATCH_META
from opex_trio.testing.mcp_server import McpTestServer, ToolContext, builtin_server
from tests.agent.test_chat import asks, call, says, setup, tool_messages
from tests.mcp.support import BOUND

COUNT = {
    "type": "object",
    "properties": {"n": {"type": "integer"}},
    "required": ["n"],
}


def counting_server() -> McpTestServer:
    server = builtin_server()

    def count(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        answer: dict[str, Any] = {"content": [{"type": "text", "text": "counted"}]}
        if "value" in args:
            answer["structuredContent"] = {"n": args["value"]}
        if args.get("fail"):
            answer["isError"] = True
        return answer

    server.add_tool("count", count, outputSchema=COUNT)
    return server


async def test_a_mismatch_becomes_a_tool_error_with_the_reason(autojump_clock: Any) -> None:
    async with setup(counting_server()) as (_llm, _client, mcp):
        good = await mcp.call_tool("tools", "count", {"value": 3})
        assert not good.is_error and good.structured_content == {"n": 3}

        bad = await mcp.call_tool("tools", "count", {"value": "three"})
        assert bad.is_error
        assert bad.text.startswith(
            "Error: the structuredContent of tool 'count' does not match its outputSchema "
            "at n: 'three' is not of type 'integer'"
        )
        assert "counted" in bad.text  # the server's own content follows
        assert bad.meta is not None and "'three'" in bad.meta[MISMATCH_META]

        missing = await mcp.call_tool("tools", "count", {})
        assert missing.is_error and "sent no structuredContent" in missing.text

        # A tool error is the tool's answer, not checked.
        failed = await mcp.call_tool("tools", "count", {"value": "x", "fail": True})
        assert failed.is_error and failed.text == "counted"


async def test_warn_only_and_off(autojump_clock: Any, caplog: pytest.LogCaptureFixture) -> None:
    for mode in ("warn", "off"):
        caplog.clear()
        server = counting_server()
        with trio.fail_after(BOUND):
            async with trio.open_nursery() as nursery, SessionManager() as mcp:
                await mcp.add_server(
                    server.in_process(nursery),
                    name="tools",
                    options=ServerOptions(health=None, validate_output=mode),
                    wait=True,
                )
                with caplog.at_level(logging.WARNING, "opex_trio.mcp"):
                    result = await mcp.call_tool("tools", "count", {"value": "three"})
                nursery.cancel_scope.cancel()
        assert not result.is_error and result.structured_content == {"n": "three"}
        warned = [r.getMessage() for r in caplog.records if "outputSchema" in r.getMessage()]
        assert len(warned) == (1 if mode == "warn" else 0), mode


async def test_the_model_and_telemetry_hear_the_reason(autojump_clock: Any) -> None:
    finished: list[telemetry.ToolCallFinished] = []

    def record(event: telemetry.TelemetryEvent) -> None:
        if isinstance(event, telemetry.ToolCallFinished):
            finished.append(event)

    async with setup(counting_server()) as (llm, client, mcp):
        llm.push(asks(call("c1", "count", {"value": 1.5})), says("ok"))
        with telemetry.subscribe(record):
            result = await Chat(client, mcp=mcp).chat(
                model="m", messages=[{"role": "user", "content": "count"}]
            )
    (outcome,) = result.tool_calls
    assert outcome.outcome == "error"
    told = tool_messages(llm.requests[1])[0]["content"]
    assert "does not match its outputSchema at n: 1.5 is not of type 'integer'" in told
    (event,) = finished
    assert event.outcome == "error" and isinstance(event.error, ProtocolError)
    assert "1.5 is not of type 'integer'" in str(event.error)


def test_explicit_checks_without_jsonschema_name_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("opex_trio.mcp.output_schema.output_validation_available", lambda: False)
    with pytest.raises(ConfigError, match=r"pip install 'opex-trio\[schema\]'"):
        ServerOptions(validate_output="error")
    assert ServerOptions(validate_output="off").validate_output == "off"
    with pytest.raises(ConfigError, match="validate_output"):
        ServerOptions(validate_output="strict")  # type: ignore[arg-type]


async def test_server_everything_structured_content_passes(
    everything_stdio_command: list[str],
) -> None:
    with trio.fail_after(BOUND):
        async with SessionManager() as mcp:
            await mcp.add_server(
                {"command": everything_stdio_command[0], "args": everything_stdio_command[1:]},
                name="everything",
                options=ServerOptions(validate_output="error"),
                wait=True,
            )
            assert mcp.tools()["get-structured-content"].tool.output_schema is not None
            weather = await mcp.call_tool(
                "everything", "get-structured-content", {"location": "Chicago"}
            )
    assert not weather.is_error
    assert set(weather.structured_content) >= {"temperature", "conditions", "humidity"}
