"""The MCP actor over stdio against real servers from npm and PyPI.

``@modelcontextprotocol/server-everything`` (npm) exercises most of the
protocol; ``mcp-server-time`` (PyPI) is a small Python server. Both are
installed by the test setup from the lock files in tests/peers/.
"""

from __future__ import annotations

import base64
from typing import Any

import trio

from opex_trio.mcp.client import ClientOptions, McpClient
from opex_trio.protocol.session import LogReceived
from opex_trio.protocol.types import (
    CreateMessageParams,
    ImageContent,
    LoggingMessageParams,
    ProgressParams,
    TextContent,
    TextResourceContents,
)
from opex_trio.transports.stdio import StdioParameters, open_stdio_transport
from tests.mcp.support import BOUND, LeakCheck


def client_for(argv: list[str], name: str, options: ClientOptions | None = None) -> McpClient:
    params = StdioParameters(argv[0], argv[1:], name=name)
    return McpClient(lambda: open_stdio_transport(params), name=name, options=options)


async def test_server_everything_over_stdio(everything_stdio_command: list[str]) -> None:
    leaks = LeakCheck()
    logs: list[LoggingMessageParams] = []
    sampled: list[CreateMessageParams] = []

    async def sample(params: CreateMessageParams) -> dict[str, Any]:
        sampled.append(params)
        return {
            "role": "assistant",
            "content": {"type": "text", "text": "sampled answer"},
            "model": "test-model",
        }

    options = ClientOptions(on_log=logs.append, sampling_handler=sample)
    with trio.fail_after(BOUND):
        async with client_for(everything_stdio_command, "everything", options) as client:
            leaks.watch(client.transport.pid)  # type: ignore[union-attr]
            assert client.protocol_version == "2025-11-25"
            assert client.capabilities.tools is not None
            tools = {t.name: t for t in await client.list_tools()}
            assert {"echo", "get-sum", "get-tiny-image", "get-structured-content"} <= set(tools)

            echoed = await client.call_tool("echo", {"message": "héllo"})
            assert echoed.text == "Echo: héllo"

            total = await client.call_tool("get-sum", {"a": 2, "b": 40})
            assert "42" in total.text

            weather = await client.call_tool("get-structured-content", {"location": "Chicago"})
            assert isinstance(weather.structured_content, dict)
            assert set(weather.structured_content) >= {"temperature", "conditions", "humidity"}
            assert tools["get-structured-content"].output_schema is not None

            image = await client.call_tool("get-tiny-image")
            images = [b for b in image.content if isinstance(b, ImageContent)]
            assert images and images[0].mime_type == "image/png"
            assert base64.b64decode(images[0].data).startswith(b"\x89PNG")

            progress: list[ProgressParams] = []
            done = await client.call_tool(
                "trigger-long-running-operation",
                {"duration": 1, "steps": 4},
                progress=progress.append,
            )
            assert "completed" in done.text.lower()
            assert [p.progress for p in progress] == [1, 2, 3, 4]
            assert all(p.total == 4 for p in progress)

            # Logging: set the level, switch the simulated logs on, wait for one.
            await client.set_logging_level("debug")
            async with client.subscribe() as notices:
                await client.call_tool("toggle-simulated-logging")
                with trio.fail_after(BOUND):
                    async for notice in notices:
                        if isinstance(notice, LogReceived):
                            break
            assert logs

            resources = await client.list_resources()
            assert resources
            read = await client.read_resource(resources[0].uri)
            assert isinstance(read.contents[0], TextResourceContents)
            templates = await client.list_resource_templates()
            assert any("{resourceId}" in t.uri_template for t in templates)

            prompts = {p.name: p for p in await client.list_prompts()}
            assert "args-prompt" in prompts
            rendered = await client.get_prompt("args-prompt", {"city": "Paris", "state": "TX"})
            text = rendered.messages[0].content
            assert isinstance(text, TextContent) and "Paris" in text.text

            # Tools that need a client capability appear once it is declared.
            if "trigger-sampling-request" not in tools:
                tools = {t.name: t for t in await client.list_tools()}
            answer = await client.call_tool("trigger-sampling-request", {"prompt": "Hi?"})
            assert "sampled answer" in answer.text
            assert sampled and sampled[0].messages
            await client.ping()
    leaks.assert_clean()


async def test_mcp_server_time_over_stdio(time_server_command: list[str]) -> None:
    leaks = LeakCheck()
    with trio.fail_after(BOUND):
        async with client_for(time_server_command, "time") as client:
            leaks.watch(client.transport.pid)  # type: ignore[union-attr]
            assert client.server_info.name == "mcp-time"
            names = [t.name for t in await client.list_tools()]
            assert names == ["get_current_time", "convert_time"]
            now = await client.call_tool("get_current_time", {"timezone": "Asia/Tokyo"})
            assert not now.is_error and "Asia/Tokyo" in now.text
            converted = await client.call_tool(
                "convert_time",
                {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Europe/Paris"},
            )
            assert "13:00" in converted.text or "14:00" in converted.text
            bad = await client.call_tool("get_current_time", {"timezone": "Not/AZone"})
            assert bad.is_error
    leaks.assert_clean()
