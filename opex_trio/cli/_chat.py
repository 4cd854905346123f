"""The ``run`` and ``chat`` commands: one answer, or a conversation read line by line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import trio

from ..agent.chat import ChatResult
from ..errors import AuthenticationError, ConfigError, LLMError, PermissionDeniedError
from ._answer import answer, answer_whole, check_answered, local_hint, make_chat, result_json
from ._environment import environment
from ._errors import EXIT_FAILURE, EXIT_OK, CliError, describe
from ._interrupts import Interrupts
from ._person import Person
from ._prompt import LinePrompt
from ._ui import Ui

__all__ = ["chat_command", "run_command"]


async def run_command(args: argparse.Namespace, ui: Ui) -> int:
    """``opex-trio run PROMPT``: one answer, streamed or as JSON."""
    person = Person.for_command(args, ui)
    async with environment(args, ui, with_model=True, person=person) as env:
        assert env.model is not None
        chat = make_chat(args, env, ui, streamed=not args.json)
        messages = [{"role": "user", "content": args.prompt}]
        try:
            if args.json:
                result = await answer_whole(chat, args, env, ui, messages)
            else:
                result = await answer(chat, args, env, ui, messages)
        except LLMError as exc:
            raise local_hint(env, exc) from exc
        if args.json:
            ui.print(
                json.dumps(
                    result_json(result, env.model.model),
                    indent=2,
                    default=str,
                    ensure_ascii=False,
                )
            )
        check_answered(result, args)
    return EXIT_OK


def _fatal(error: BaseException) -> bool:
    """Whether a failed chat turn ends the session (a key the API refuses will not change)."""
    return isinstance(error, AuthenticationError | PermissionDeniedError | ConfigError)


async def chat_command(args: argparse.Namespace, ui: Ui, interrupts: Interrupts) -> int:
    """``opex-trio chat``: read lines, answer each, keep the conversation."""
    prompt = LinePrompt(ui, sys.stdin.fileno())
    try:
        return await _converse(args, ui, interrupts, prompt)
    finally:
        prompt.close()


async def _converse(
    args: argparse.Namespace, ui: Ui, interrupts: Interrupts, prompt: LinePrompt
) -> int:
    interactive = prompt.interactive
    person = Person.for_command(args, ui)
    async with environment(args, ui, with_model=True, person=person) as env:
        chat = make_chat(args, env, ui)
        if interactive:
            ui.notice("type a message; Ctrl-C cancels an answer; Ctrl-D or Ctrl-C here quits")
        conversation: list[dict[str, Any]] = []
        failures = 0
        while True:
            line = await prompt.readline()
            if line is None:
                break
            if not line.strip():
                continue
            messages = [*conversation, {"role": "user", "content": line}]
            result: ChatResult | None = None
            with trio.CancelScope() as turn:
                interrupts.turn = turn
                try:
                    result = await answer(chat, args, env, ui, messages)
                except LLMError as exc:
                    error = local_hint(env, exc)
                    if _fatal(error):
                        raise error from exc
                    ui.error(describe(error))
                    failures += 1
                finally:
                    interrupts.turn = None
            if turn.cancelled_caught:
                ui.after_signal()
                ui.tools_cancelled()
                ui.notice("answer cancelled; that message is left out of the conversation")
                continue
            if result is None:
                continue
            try:
                check_answered(result, args)
            except CliError as exc:
                ui.error(str(exc))
                failures += 1
            conversation = [*messages, *result.messages]
    return EXIT_FAILURE if failures else EXIT_OK
