"""One answer of the model, shown as it comes: the chat loop's events become lines.

The text streams to stdout; tool calls, their progress and outcomes go to
stderr through :class:`~opex_trio.cli._ui.Ui`. ``run --json`` asks for the
whole answer at once and prints it as one JSON document.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..agent.chat import (
    Chat,
    ChatFinished,
    ChatResult,
    TextDelta,
    ToolFinished,
    ToolProgress,
    ToolResult,
    ToolStarted,
    TurnFinished,
)
from ..errors import LLMError
from ._environment import Env
from ._errors import EXIT_FAILURE, CliError, describe
from ._model import OpenModel, token_limit
from ._ui import Ui

__all__ = [
    "answer",
    "answer_whole",
    "check_answered",
    "llm_options",
    "local_hint",
    "make_chat",
    "result_json",
]


def llm_options(args: argparse.Namespace, model: OpenModel) -> dict[str, Any]:
    """The request options of every model call: the answer's bound, and no tool calls.

    The token bound comes from ``--max-tokens``. The embedded model also gets
    ``tool_choice: "none"``. SmolLM2-135M cannot call tools, and offered them
    with ``"auto"`` it gives an empty answer in llama-cpp-python's
    function-calling format; ``"none"`` keeps the tools out of its prompt, so it
    answers in plain text, as its start-up line says it will.
    """
    options: dict[str, Any] = token_limit(model.choice, args.max_tokens)
    if model.choice.source == "local":
        options["tool_choice"] = "none"
    return options


def make_chat(args: argparse.Namespace, env: Env, ui: Ui, *, streamed: bool = True) -> Chat:
    """The chat loop of a command; unstreamed, it reports tool calls through hooks."""
    assert env.model is not None
    if streamed:
        # The stream's events show the tool calls and their progress.
        chat = Chat(
            env.model.client,
            mcp=env.mcp,
            max_turns=args.max_turns,
            tool_timeout=args.tool_timeout or None,
        )
    else:

        def finished(tool_call_id: str, name: str, result: ToolResult, context: Any) -> None:
            ui.tool_finished(result)

        chat = Chat(
            env.model.client,
            mcp=env.mcp,
            max_turns=args.max_turns,
            tool_timeout=args.tool_timeout or None,
            on_progress=ui.tool_progress,
            on_tool_result=finished,
        )
    if env.person is not None and env.person.approve is not None:
        chat.before_tool_call = env.person.approval_hook(chat.tool_index)
    return chat


async def answer(
    chat: Chat,
    args: argparse.Namespace,
    env: Env,
    ui: Ui,
    messages: list[dict[str, Any]],
) -> ChatResult:
    """The model's answer, streamed: text on stdout as it comes, tool calls on stderr."""
    assert env.model is not None
    result: ChatResult | None = None
    async with chat.stream(
        model=env.model.model,
        messages=messages,
        system_prompt=args.system,
        **llm_options(args, env.model),
    ) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                ui.text(event.text)
            elif isinstance(event, ToolStarted):
                ui.tool_started(event.tool_call_id, event.name, event.arguments)
            elif isinstance(event, ToolProgress):
                ui.tool_progress(event)
            elif isinstance(event, ToolFinished):
                ui.tool_finished(event.result)
            elif isinstance(event, TurnFinished):
                ui.end_answer()
            elif isinstance(event, ChatFinished):
                result = event.result
    ui.clear_progress()
    ui.end_answer()
    assert result is not None
    return result


async def answer_whole(
    chat: Chat, args: argparse.Namespace, env: Env, ui: Ui, messages: list[dict[str, Any]]
) -> ChatResult:
    """The model's answer, not streamed (servers report usage more often then)."""
    assert env.model is not None
    try:
        return await chat.chat(
            model=env.model.model,
            messages=messages,
            system_prompt=args.system,
            **llm_options(args, env.model),
        )
    finally:
        ui.clear_progress()


def result_json(result: ChatResult, model: str) -> dict[str, Any]:
    """The JSON document ``run --json`` prints."""
    return {
        "model": model,
        "content": result.content,
        "stop_reason": result.stop_reason,
        "turns": result.turns,
        "usage": {
            "prompt_tokens": result.usage.prompt_tokens,
            "completion_tokens": result.usage.completion_tokens,
            "total_tokens": result.usage.total_tokens,
        },
        "messages": list(result.messages),
        "tool_calls": [
            {
                "id": call.tool_call_id,
                "name": call.name,
                "server": call.server,
                "arguments": call.arguments,
                "outcome": call.outcome,
                "duration": round(call.duration, 6),
                "content": call.content,
                "error": describe(call.error) if call.error is not None else None,
            }
            for call in result.tool_calls
        ],
    }


def check_answered(result: ChatResult, args: argparse.Namespace) -> None:
    """Raise :class:`CliError` when the model stopped without a final answer."""
    if result.stop_reason == "max_turns":
        raise CliError(
            f"no final answer: the model was still calling tools after {result.turns} "
            "model calls (see --max-turns)",
            EXIT_FAILURE,
        )


def local_hint(env: Env, error: BaseException) -> BaseException:
    """Add the embedded server's last words to an error, when it has died."""
    local = env.model.local if env.model is not None else None
    if local is not None and local.returncode is not None and isinstance(error, LLMError):
        return CliError(
            f"{describe(error)} (the embedded model server has exited: {local.failure_details()})",
            EXIT_FAILURE,
        )
    return error
