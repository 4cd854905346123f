"""The built-in tools of the test server's program form.

``python -m opex_trio.testing.mcp_server`` serves these over stdio; tests use
them in process through :func:`opex_trio.testing.mcp_server.builtin_server`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

from ._connection import _NO_ANSWER, ToolContext, ToolFailure

if TYPE_CHECKING:
    from .mcp_server import McpTestServer


def add_builtin_tools(server: McpTestServer) -> None:
    """Register echo, add, sleep, progress, big, crash and the rest, a resource and a prompt."""

    @server.tool(
        input_schema={
            "type": "object",
            "properties": {"message": {"type": "string"}},
            "required": ["message"],
        },
        annotations={"readOnlyHint": True},
    )
    def echo(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Return the message."""
        return str(args.get("message", ""))

    @server.tool(
        input_schema={
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
        annotations={"readOnlyHint": True, "idempotentHint": True},
    )
    def add(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        """Add two numbers."""
        total = args["a"] + args["b"]
        return {
            "content": [{"type": "text", "text": str(total)}],
            "structuredContent": {"sum": total},
        }

    @server.tool(
        input_schema={"type": "object", "properties": {"seconds": {"type": "number"}}},
    )
    async def sleep(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Sleep, then answer."""
        await trio.sleep(float(args.get("seconds", 1)))
        return "slept"

    @server.tool(
        input_schema={"type": "object", "properties": {"steps": {"type": "integer"}}},
    )
    async def progress(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Report progress in steps."""
        steps = int(args.get("steps", 3))
        for i in range(1, steps + 1):
            await ctx.progress(i, steps, f"step {i}")
            await trio.sleep(0.01)
        return f"done in {steps} steps"

    @server.tool(input_schema={"type": "object", "properties": {"size": {"type": "integer"}}})
    def big(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Answer with a text of ``size`` bytes."""
        return "x" * int(args.get("size", 1024))

    @server.tool()
    def crash(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Exit the whole process at once, mid-call."""
        os._exit(3)

    @server.tool()
    def hang(args: Mapping[str, Any], ctx: ToolContext) -> Any:
        """Never answer."""
        return _NO_ANSWER

    @server.tool()
    async def garbage(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Write a non-JSON line to stdout, then answer."""
        os.write(1, b"this is not JSON\n")
        return "after garbage"

    @server.tool()
    def fail(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Fail as a tool (an isError result)."""
        raise ToolFailure("the tool failed on purpose")

    @server.tool(
        input_schema={
            "type": "object",
            "properties": {"level": {"type": "string"}, "message": {"type": "string"}},
        }
    )
    async def log(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Send a log message, then answer."""
        await ctx.log(str(args.get("level", "info")), str(args.get("message", "hello")), "test")
        return "logged"

    @server.tool()
    async def sample(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Ask the client's model (sampling/createMessage) and return its text."""
        result = await ctx.request(
            "sampling/createMessage",
            {
                "messages": [{"role": "user", "content": {"type": "text", "text": "Say hi"}}],
                "maxTokens": 20,
            },
        )
        return str(result.get("content", {}).get("text", ""))

    @server.tool()
    async def roots(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Ask the client for its roots and return them as JSON."""
        result = await ctx.request("roots/list")
        return json.dumps(result.get("roots", []))

    @server.tool()
    async def elicit(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Ask the user (elicitation/create) and return the answer as JSON."""
        result = await ctx.request(
            "elicitation/create",
            {
                "message": "Your name?",
                "requestedSchema": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}},
                },
            },
        )
        return json.dumps(result)

    @server.tool(input_schema={"type": "object", "properties": {"name": {"type": "string"}}})
    async def add_tool(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Register a new echo-like tool and notify the client that the list changed."""
        new_name = str(args.get("name", "extra"))
        server.add_tool(new_name, lambda a, c: f"{new_name}: {a}")
        await ctx.notify("notifications/tools/list_changed")
        return f"added {new_name}"

    @server.tool()
    def pid(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """The server's pid."""
        return str(os.getpid())

    @server.tool()
    def meta(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """The ``_meta`` of this call's request, as JSON."""
        return json.dumps((ctx.call.params or {}).get("_meta") or {}, sort_keys=True)

    @server.tool()
    def stats(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        """What the server saw: request count, ids the client cancelled, notification methods."""
        seen = {
            "requests": len(server.requests),
            "cancelled": server.cancelled,
            "notifications": [n.method for n in server.notifications],
            "log_level": server.log_level,
        }
        return {"content": [{"type": "text", "text": json.dumps(seen)}], "structuredContent": seen}

    @server.tool(input_schema={"type": "object", "properties": {"name": {"type": "string"}}})
    def getenv(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """The value of an environment variable of the server, or <unset>."""
        return os.environ.get(str(args.get("name")), "<unset>")

    @server.tool()
    async def ping_client(args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Ping the client and report its answer."""
        return json.dumps(await ctx.request("ping"))

    server.resources["test://hello"] = {
        "resource": {"uri": "test://hello", "name": "hello", "mimeType": "text/plain"},
        "contents": {"uri": "test://hello", "mimeType": "text/plain", "text": "Hello, world"},
    }
    server.prompts["greet"] = {
        "prompt": {
            "name": "greet",
            "description": "Greet someone",
            "arguments": [{"name": "who", "required": True}],
        },
        "render": lambda a: [
            {"role": "user", "content": {"type": "text", "text": f"Hello, {a.get('who')}!"}}
        ],
    }
