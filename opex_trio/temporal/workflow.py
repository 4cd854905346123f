"""The chat loop as a Temporal workflow: its decisions here, its model and tool calls activities.

Theory of operation
-------------------
:class:`ChatWorkflow` runs the loop of :meth:`opex_trio.Chat.chat` with every
effect moved out: each model call is the activity ``opex_trio.model_call`` and
each tool call the activity ``opex_trio.tool_call`` (see
:mod:`opex_trio.temporal.activities`), run by any worker on the task queue.
What stays here is deterministic: counting turns, deciding whether to stop
(the model answered, ``max_turns``, ``execute_tools=False``, a hook said so),
building the tool messages in the order the model asked for the calls, and
summing the tokens. Temporal records each activity's result in the run's
history, so a worker that dies mid-run costs only the call it was making: the
next worker replays this code against the history (no completed call runs
again) and carries on from there.

Each step carries its idempotency key (:func:`~opex_trio.temporal.steps.step_key`),
the same on every attempt.

Hooks
-----
Hooks that decide the loop's course run here, so they must be deterministic
and do no IO (no clock, no randomness, no network: Temporal replays them):
subclass :class:`ChatWorkflow` under a name of its own, override
:meth:`ChatWorkflow.on_assistant_message` and :meth:`ChatWorkflow.on_tool_result`
(they return ``None``, :class:`~opex_trio.Continue` or :class:`~opex_trio.Stop`
as the in-process hooks do), and give the worker the subclass. Temporal wants
the ``run`` method on the subclass itself::

    @workflow.defn(name="my_chat")
    class MyChat(ChatWorkflow):
        @workflow.run
        async def run(self, spec: ChatSpec) -> DurableResult:
            return await super().run(spec)

        def on_tool_result(self, result, context):
            return Stop() if result.is_error else None

Hooks that act on the world (``before_tool_call``, the program's
``custom_tool_executor``) run in the tool activity on the worker and may do IO;
they may run more than once for one call.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.workflow import ActivityCancellationType

from .steps import (
    MODEL_ACTIVITY,
    TOOL_ACTIVITY,
    WORKFLOW_NAME,
    ChatSpec,
    DurableEvent,
    DurableResult,
    ModelOutcome,
    ModelStep,
    ToolOutcome,
    ToolStep,
    step_key,
)

with workflow.unsafe.imports_passed_through():
    from ..agent.hooks import UNCHANGED, Continue, Stop

__all__ = ["ChatWorkflow"]

# Margin over a tool's own timeout before Temporal gives the call up: the
# tool's timeout is enforced on the worker, which then reports it to the model.
_TOOL_MARGIN = 30.0


def _add(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else a + b


@workflow.defn(name=WORKFLOW_NAME)
class ChatWorkflow:
    """A durable chat: start it with a :class:`~opex_trio.temporal.steps.ChatSpec`."""

    def __init__(self) -> None:
        self._events: list[DurableEvent] = []
        self._context: Any = None
        self._stop = False

    # -- hooks (override in a subclass; deterministic, no IO)

    def on_assistant_message(self, message: dict[str, Any], context: Any) -> Continue | Stop | None:
        """Called with each assistant message; return ``Stop(...)`` to end the chat."""
        return None

    def on_tool_result(self, result: ToolOutcome, context: Any) -> Continue | Stop | None:
        """Called with each tool result, in the order of the calls."""
        return None

    # -- queries

    @workflow.query(name="opex_trio.events")
    def events(self, since: int) -> list[DurableEvent]:
        """The events from number ``since`` on."""
        return self._events[max(since, 0) :]

    # -- the loop

    def _emit(self, kind: str, turn: int, **fields: Any) -> None:
        self._events.append(DurableEvent(len(self._events), kind, turn, **fields))

    def _apply(self, answer: Any, hook: str) -> None:
        if answer is None:
            return
        if isinstance(answer, Stop):
            self._stop = True
        elif not isinstance(answer, Continue):
            # Fails the run: replaying the same code would give the same answer.
            raise ApplicationError(
                f"the {hook} hook returned {answer!r}; return None, Continue(...) or Stop(...)",
                type="ConfigError",
                non_retryable=True,
            )
        if answer.context is not UNCHANGED:
            self._context = answer.context

    def _stopped(self) -> bool:
        return self._stop

    def _retry(self, spec: ChatSpec) -> RetryPolicy:
        return RetryPolicy(
            initial_interval=timedelta(seconds=1),
            maximum_interval=timedelta(seconds=30),
            maximum_attempts=spec.max_attempts,
        )

    @workflow.run
    async def run(self, spec: ChatSpec) -> DurableResult:
        """Run the conversation until the model answers; see the module docstring."""
        run_id = workflow.info().run_id
        self._context = spec.context
        conversation = [dict(m) for m in spec.messages]
        if spec.system_prompt:
            conversation.insert(0, {"role": "system", "content": spec.system_prompt})
        added: list[dict[str, Any]] = []
        results: list[ToolOutcome] = []
        tokens: list[int | None] = [None, None, None]
        reason = "max_turns"
        message: dict[str, Any] | None = None
        pending: list[dict[str, Any]] = []
        turn = 0
        while turn < spec.max_turns:
            turn += 1
            outcome = await self._ask(spec, run_id, turn, conversation)
            tokens = [
                _add(tokens[0], outcome.prompt_tokens),
                _add(tokens[1], outcome.completion_tokens),
                _add(tokens[2], outcome.total_tokens),
            ]
            message = outcome.message
            conversation.append(message)
            added.append(message)
            self._emit("model_call_finished", turn, message=message)
            self._apply(self.on_assistant_message(message, self._context), "on_assistant_message")
            if self._stopped():
                reason, pending = "stopped_by_hook", outcome.tool_calls
                break
            if not outcome.tool_calls:
                reason = "answered"
                break
            if not spec.execute_tools:
                reason, pending = "tool_calls_returned", outcome.tool_calls
                break
            done = await self._run_tools(spec, run_id, turn, outcome.tool_calls)
            for tool_message in self._tool_messages(spec, done):
                conversation.append(tool_message)
                added.append(tool_message)
            results.extend(done)
            for done_call in done:
                self._apply(self.on_tool_result(done_call, self._context), "on_tool_result")
            self._emit("turn_finished", turn, message=message)
            if self._stopped():
                reason = "stopped_by_hook"
                break
        result = DurableResult(
            message=message,
            messages=added,
            tool_calls=results,
            stop_reason=reason,
            turns=turn,
            context=self._context,
            pending_tool_calls=pending,
            prompt_tokens=tokens[0],
            completion_tokens=tokens[1],
            total_tokens=tokens[2],
        )
        self._emit("chat_finished", turn, result=result)
        return result

    async def _ask(
        self, spec: ChatSpec, run_id: str, turn: int, conversation: list[dict[str, Any]]
    ) -> ModelOutcome:
        options = dict(spec.llm_options)
        forced = options.get("tool_choice")
        if turn > 1 and forced is not None and forced not in ("auto", "none"):
            # As in Chat: a forced tool choice holds for the first turn only,
            # or the model could never answer.
            options["tool_choice"] = "auto"
        step = ModelStep(
            key=step_key(run_id, turn, "model"),
            turn=turn,
            model=spec.model,
            messages=conversation,
            servers=spec.servers,
            allow_tools=spec.allow_tools,
            deny_tools=spec.deny_tools,
            parallel_tool_calls=spec.parallel_tool_calls,
            llm_options=options,
        )
        outcome: ModelOutcome = await workflow.execute_activity(
            MODEL_ACTIVITY,
            step,
            result_type=ModelOutcome,
            start_to_close_timeout=timedelta(seconds=spec.model_timeout),
            heartbeat_timeout=timedelta(seconds=spec.heartbeat_timeout),
            retry_policy=self._retry(spec),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        return outcome

    async def _run_tools(
        self, spec: ChatSpec, run_id: str, turn: int, calls: list[dict[str, Any]]
    ) -> list[ToolOutcome]:
        timeout = spec.tool_timeout
        close = None if timeout is None else timedelta(seconds=timeout + _TOOL_MARGIN)

        async def one(position: int, call: dict[str, Any]) -> ToolOutcome:
            function = call.get("function") or {}
            self._emit("tool_call_started", turn, tool=dict(call, name=function.get("name")))
            step = ToolStep(
                key=step_key(run_id, turn, f"tool-{position}"),
                turn=turn,
                call=call,
                servers=spec.servers,
                allow_tools=spec.allow_tools,
                deny_tools=spec.deny_tools,
                timeout=timeout,
                context=self._context,
            )
            outcome: ToolOutcome = await workflow.execute_activity(
                TOOL_ACTIVITY,
                step,
                result_type=ToolOutcome,
                start_to_close_timeout=close,
                schedule_to_close_timeout=None,
                heartbeat_timeout=timedelta(seconds=spec.heartbeat_timeout),
                retry_policy=self._retry(spec),
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
            self._emit("tool_call_finished", turn, tool=dataclasses.asdict(outcome))
            return outcome

        if spec.parallel_tool_calls and len(calls) > 1:
            return list(await asyncio.gather(*(one(i, c) for i, c in enumerate(calls))))
        return [await one(i, c) for i, c in enumerate(calls)]

    def _tool_messages(self, spec: ChatSpec, done: list[ToolOutcome]) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        images: list[dict[str, Any]] = []
        for result in done:
            if spec.tool_result_role == "tool":
                messages.append(
                    {"role": "tool", "tool_call_id": result.tool_call_id, "content": result.content}
                )
            else:
                messages.append(
                    {
                        "role": spec.tool_result_role,
                        "content": f"[result of tool {result.name}, call {result.tool_call_id}]\n"
                        + result.content,
                    }
                )
            images.extend(result.images)
        if images:
            messages.append(
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "Images returned by the tools:"}, *images],
                }
            )
        return messages
