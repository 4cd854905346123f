"""The chat loop end to end: a real llama.cpp model forced to call a real MCP server's tool.

The model (SmolLM2-135M) is tiny, so the test checks the loop, not the model's
wisdom: the forced call reaches ``mcp-server-time`` (from PyPI, a real
process), its result goes back to the model, and the model answers.
"""

from __future__ import annotations

import pytest
import trio

from opex_trio import Chat, Client, SessionManager
from opex_trio.mcp.manager import ServerOptions
from tests.interop.test_llm_interop import CALL_BOUND, llama_server
from tests.peers import time_server_command

pytestmark = pytest.mark.interop

__all__ = ["llama_server"]  # the fixture, shared with the LLM client's interop tests


async def test_forced_tool_call_on_a_real_mcp_server(llama_server: str) -> None:
    command = time_server_command()
    with trio.fail_after(CALL_BOUND):
        async with Client(None, base_url=llama_server) as client, SessionManager() as mcp:
            await mcp.add_server(
                {"command": command[0], "args": command[1:]},
                name="time",
                options=ServerOptions(health=None),
                wait=True,
                timeout=CALL_BOUND,
            )
            chat = Chat(client, mcp=mcp, max_turns=2, tool_timeout=30)
            result = await chat.chat(
                model="smollm2",
                messages=[{"role": "user", "content": "What time is it in Tokyo?"}],
                tool_choice={"type": "function", "function": {"name": "get_current_time"}},
                max_tokens=96,
                temperature=0,
            )
    assert result.turns == 2
    (made,) = result.tool_calls[:1]
    assert made.name == "get_current_time"
    # Whatever the small model wrote as arguments, the server's answer (a time,
    # or its complaint about the arguments) went back to it in a tool message.
    roles = [m["role"] for m in result.messages]
    # Turn 2 saw the tool's answer: the model wrote a second message (an answer,
    # or, being small, another call).
    assert roles[:2] == ["assistant", "tool"] and roles.count("assistant") == 2
    tool_message = result.messages[1]
    assert tool_message["tool_call_id"] == made.tool_call_id and tool_message["content"]
    if made.outcome == "ok":
        assert made.server == "time" and "datetime" in made.content
    assert result.stop_reason in {"answered", "max_turns"}
