"""The options of a durable chat, as Chat has them: hooks, filters, turns, the program's tools."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import trio

pytest.importorskip("temporalio", reason="the 'temporal' extra is not installed")


from opex_trio import Deny
from opex_trio.errors import ConfigError
from opex_trio.temporal import (
    ChatSpec,
    ChatWorkflow,
    DurableChats,
    DurableResult,
    RunFailedError,
    WorkerConfig,
)
from opex_trio.testing.llm_server import JSONReply, RecordedRequest, error_body, open_llm_server

from .conftest import DevServer, ScriptedModel, thread_worker
from .workflows import HookedChat, StopAtOnce

LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a word up.",
        "parameters": {"type": "object", "properties": {"step": {"type": "integer"}}},
    },
}


async def lookup(name: str, arguments: Mapping[str, Any], context: Any) -> str:
    return f"{name} {arguments['step']} in {context}"


async def deny_step_one(name: str, arguments: Mapping[str, Any], context: Any) -> Deny | None:
    return Deny("step one is not allowed") if arguments.get("step") == 1 else None


async def run_chat(
    server: DevServer,
    task_queue: str,
    model: Any,
    spec: ChatSpec,
    *,
    workflow_name: str = "opex_trio.chat",
) -> tuple[DurableResult, list[RecordedRequest]]:
    async with open_llm_server(model) as llm:
        config = WorkerConfig(
            address=server.address,
            task_queue=task_queue,
            base_url=llm.base_url,
            workflows=(ChatWorkflow, HookedChat, StopAtOnce),
            activity_options={
                "custom_tools": [LOOKUP],
                "custom_tool_executor": lookup,
                "before_tool_call": deny_step_one,
            },
        )
        async with (
            thread_worker(config),
            DurableChats(server.address, task_queue=task_queue) as chats,
        ):
            with trio.fail_after(120):
                run = await chats.start(spec, workflow=workflow_name)
                result = await run.result()
        return result, list(llm.requests)


def spec(**options: Any) -> ChatSpec:
    return ChatSpec(model="m", messages=[{"role": "user", "content": "go"}], **options)


async def test_program_tools_run_on_the_worker_with_the_context_and_the_hooks(
    temporal_server: DevServer, task_queue: str
) -> None:
    result, requests = await run_chat(
        temporal_server,
        task_queue,
        ScriptedModel("lookup", calls=3),
        spec(system_prompt="be brief", context="ctx"),
    )
    assert requests[0].json["messages"][0] == {"role": "system", "content": "be brief"}
    assert [t["function"]["name"] for t in requests[0].json["tools"]] == ["lookup"]
    assert [c.outcome for c in result.tool_calls] == ["ok", "denied", "ok"]
    assert result.tool_calls[0].content == "lookup 0 in ctx"
    assert "step one is not allowed" in result.tool_calls[1].content
    assert result.stop_reason == "answered"
    assert result.prompt_tokens == 4 * 5


async def test_workflow_hooks_decide_the_course_and_the_context(
    temporal_server: DevServer, task_queue: str
) -> None:
    result, requests = await run_chat(
        temporal_server,
        task_queue,
        ScriptedModel("lookup", calls=3),
        spec(),
        workflow_name="test.hooked_chat",
    )
    assert result.stop_reason == "stopped_by_hook"
    assert result.context == 2
    assert result.turns == 2
    assert len(requests) == 2


async def test_a_hook_that_stops_at_once_hands_back_the_tool_calls(
    temporal_server: DevServer, task_queue: str
) -> None:
    result, _ = await run_chat(
        temporal_server,
        task_queue,
        ScriptedModel("lookup", calls=3),
        spec(),
        workflow_name="test.stop_at_once",
    )
    assert result.stop_reason == "stopped_by_hook"
    assert result.context == "stopped"
    assert [c["function"]["name"] for c in result.pending_tool_calls] == ["lookup"]
    assert result.tool_calls == []


async def test_max_turns_execute_tools_filters_and_forced_tool_choice(
    temporal_server: DevServer, task_queue: str
) -> None:
    result, requests = await run_chat(
        temporal_server,
        task_queue,
        ScriptedModel("lookup", calls=5),
        spec(max_turns=2, llm_options={"tool_choice": "required"}),
    )
    assert result.stop_reason == "max_turns"
    assert result.turns == 2
    assert [r.json.get("tool_choice") for r in requests] == ["required", "auto"]

    result, requests = await run_chat(
        temporal_server, task_queue, ScriptedModel("lookup", calls=5), spec(execute_tools=False)
    )
    assert result.stop_reason == "tool_calls_returned"
    assert len(result.pending_tool_calls) == 1
    assert len(requests) == 1

    _, requests = await run_chat(
        temporal_server,
        task_queue,
        ScriptedModel("lookup", calls=0),
        spec(deny_tools=["look*"]),
    )
    assert "tools" not in requests[0].json


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"model": ""}, "model"),
        ({"messages": "hi"}, "messages"),
        ({"max_turns": 0}, "max_turns"),
        ({"tool_timeout": -1}, "tool_timeout"),
        ({"heartbeat_timeout": 0}, "heartbeat_timeout"),
        ({"max_attempts": -1}, "max_attempts"),
    ],
)
def test_a_bad_spec_is_refused_where_it_is_made(options: dict[str, Any], named: str) -> None:
    fields: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "go"}]}
    with pytest.raises(ConfigError, match=named):
        ChatSpec(**{**fields, **options})


async def test_a_model_error_for_the_program_fails_the_run_without_retrying(
    temporal_server: DevServer, task_queue: str
) -> None:
    requests: list[RecordedRequest] = []

    def refuse(request: RecordedRequest) -> JSONReply:
        requests.append(request)
        return JSONReply(error_body("bad key", code=401), status=401)

    with pytest.raises(RunFailedError, match=r"failed: AuthenticationError: .*bad key"):
        await run_chat(temporal_server, task_queue, refuse, spec())
    assert len(requests) == 1
