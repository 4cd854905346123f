"""The chat loop over a real MCP server process (server-everything) and a custom tool.

The model is the scripted server on 127.0.0.1; the tools are real: this runs
in real time, with generous bounds.
"""

from __future__ import annotations

import json
from typing import Any

import trio

from opex_trio import Chat, Client, SessionManager
from opex_trio.agent.hooks import NOT_MINE, Stop
from opex_trio.mcp.manager import ServerOptions
from opex_trio.testing.llm_server import JSONReply, completion, open_llm_server

BOUND = 120

CLOCK = {
    "type": "function",
    "function": {"name": "clock", "parameters": {"type": "object", "properties": {}}},
}


def call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


async def test_multi_turn_tool_use_over_server_everything(
    everything_stdio_command: list[str],
) -> None:
    command = everything_stdio_command
    stopped_at: list[str] = []

    def executor(name: str, arguments: dict[str, Any], context: Any) -> Any:
        return "12:00" if name == "clock" else NOT_MINE

    def on_result(call_id: str, name: str, result: Any, context: Any) -> Any:
        if call_id == "t2-last":
            stopped_at.append(call_id)
            return Stop("seen enough")
        return None

    with trio.fail_after(BOUND):
        async with (
            open_llm_server() as llm,
            Client("key", base_url=llm.base_url) as client,
            SessionManager() as mcp,
        ):
            await mcp.add_server(
                {"command": command[0], "args": command[1:]},
                name="everything",
                options=ServerOptions(health=None),
                wait=True,
                timeout=BOUND,
            )
            llm.push(
                JSONReply(
                    completion(
                        None,
                        tool_calls=[
                            call("t1-a", "echo", {"message": "one"}),
                            call("t1-b", "get-sum", {"a": 20, "b": 22}),
                            call("t1-c", "clock", {}),
                            call(
                                "t1-d",
                                "trigger-long-running-operation",
                                {"duration": 30, "steps": 3},
                            ),
                            call("t1-e", "get-sum", "{oops"),
                        ],
                    )
                ),
                JSONReply(completion(None, tool_calls=[call("t2-last", "get-tiny-image", {})])),
            )
            chat = Chat(
                client,
                mcp=mcp,
                custom_tools=[CLOCK],
                custom_tool_executor=executor,
                on_tool_result=on_result,
                tool_timeout=3,
            )
            result = await chat.chat(model="m", messages=[{"role": "user", "content": "go"}])
            # The server is still healthy after the timed-out call was cancelled.
            assert (await mcp.call_tool("everything", "echo", {"message": "ok"})).text == "Echo: ok"
    assert result.stop_reason == "stopped_by_hook" and stopped_at == ["t2-last"]
    outcomes = {r.tool_call_id: (r.outcome, r.content) for r in result.tool_calls}
    assert outcomes["t1-a"] == ("ok", "Echo: one")
    assert outcomes["t1-b"][0] == "ok" and "42" in outcomes["t1-b"][1]
    assert outcomes["t1-c"] == ("ok", "12:00")
    assert outcomes["t1-d"][0] == "timeout"
    assert outcomes["t1-e"][0] == "bad_arguments"
    assert outcomes["t2-last"][0] == "ok" and "[image: image/png" in outcomes["t2-last"][1]
    second = llm.requests[1].json["messages"]
    assert [m["tool_call_id"] for m in second if m["role"] == "tool"] == [
        "t1-a",
        "t1-b",
        "t1-c",
        "t1-d",
        "t1-e",
    ]
