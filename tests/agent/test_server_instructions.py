"""A server's instructions reach the model only when the Chat is told to pass them on."""

from __future__ import annotations

from typing import Any

from opex_trio.agent.chat import Chat
from opex_trio.testing.mcp_server import McpTestServer, builtin_server

from .test_chat import says, setup


def instructed() -> McpTestServer:
    server = builtin_server()
    server.instructions = "Always call echo before answering."
    return server


async def test_instructions_follow_the_system_prompt_when_asked(autojump_clock: Any) -> None:
    async with setup(instructed()) as (llm, client, mcp):
        assert mcp.status("tools").instructions == "Always call echo before answering."
        llm.push(says("a"), says("b"), says("c"))
        messages = [{"role": "user", "content": "hi"}]
        await Chat(client, mcp=mcp).chat(model="m", messages=messages, system_prompt="Be brief.")
        await Chat(client, mcp=mcp, server_instructions=True).chat(
            model="m", messages=messages, system_prompt="Be brief."
        )
        await Chat(client, mcp=mcp, server_instructions=True).chat(model="m", messages=messages)
    off, on, alone = (r.json["messages"][0] for r in llm.requests)
    assert off == {"role": "system", "content": "Be brief."}
    assert on == {
        "role": "system",
        "content": "Be brief.\n\nInstructions from the MCP server 'tools':\n"
        "Always call echo before answering.",
    }
    assert alone["role"] == "system" and alone["content"].startswith("Instructions from")
