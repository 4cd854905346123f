"""An MCP server on the official ``mcp`` SDK that runs its own tool loop through the client's model.

Run it over stdio with the peers venv's Python::

    tests/peers/.venv/bin/python tests/agent/sampling_tools_server.py

Its one tool, ``forecast(city)``, asks the client's model (``sampling/createMessage``
with ``tools``: ``get_weather(city)``) what to say about the weather in ``city``;
whenever the model calls ``get_weather``, the server answers with a made-up
reading and asks again, at most four times, the last time with
``toolChoice: none``. The tool returns the model's final text, then a line
per tool use it ran (``ran get_weather {"city": ...}``), so a test can see
the whole loop.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import mcp.types as types
from mcp.server.mcpserver import Context, MCPServer

WEATHER_TOOL = types.Tool(
    name="get_weather",
    description="The current weather in a city",
    input_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)

ROUNDS = 4


def reading(city: str) -> str:
    """A made-up weather reading that names its city."""
    return f"{len(city) + 10} degrees and sunny in {city}"


async def forecast(city: str, ctx: Context[Any, Any]) -> str:
    """Ask the client's model about the weather in ``city``, running its tool calls."""
    messages: list[types.SamplingMessage] = [
        types.SamplingMessage(
            role="user",
            content=types.TextContent(type="text", text=f"What is the weather in {city}?"),
        )
    ]
    ran: list[str] = []
    for round_ in range(ROUNDS):
        last = round_ == ROUNDS - 1
        result = await ctx.session.create_message(
            messages,
            max_tokens=200,
            system_prompt="Use the tool.",
            tools=[WEATHER_TOOL],
            tool_choice=types.ToolChoice(mode="none" if last else "auto"),
        )
        blocks = result.content_as_list
        uses = [b for b in blocks if isinstance(b, types.ToolUseContent)]
        if result.stop_reason != "toolUse" or not uses:
            text = "".join(b.text for b in blocks if isinstance(b, types.TextContent))
            return "\n".join([text, *ran])
        messages.append(types.SamplingMessage(role="assistant", content=blocks))
        results: list[Any] = []
        for use in uses:
            ran.append(f"ran {use.name} {json.dumps(use.input, sort_keys=True)}")
            results.append(
                types.ToolResultContent(
                    type="tool_result",
                    tool_use_id=use.id,
                    content=[
                        types.TextContent(type="text", text=reading(str(use.input.get("city"))))
                    ],
                )
            )
        messages.append(types.SamplingMessage(role="user", content=results))
    return "\n".join(["(no answer)", *ran])


def main() -> int:
    """Serve over stdio."""
    app = MCPServer("sampling-tools-peer", version="1.0.0")
    app.add_tool(forecast)
    app.run("stdio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
