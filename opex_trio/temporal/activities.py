"""The activities of a durable chat: one model call, one tool call, run by trio on a worker.

Each activity is a thin asyncio shell around trio code that runs in the
worker's :class:`~opex_trio.temporal._guest.TrioGuest`, next to the LLM client
and the SessionManager that live as long as the worker. The trio code is the
in-process chat loop's own: a model step is one turn of :meth:`opex_trio.Chat.chat`
with ``execute_tools=False``; a tool step is the loop's own tool call (argument
parsing, the allow and deny filters, ``before_tool_call``, the program's
executor, the timeout, every failure turned into a message for the model).

While a step runs, trio code heartbeats to Temporal (and a progress report of an
MCP tool is a heartbeat too); a worker that stops heartbeating loses the step
to another worker after the chat's ``heartbeat_timeout``. Cancelling the
activity cancels the trio code, so the MCP server is told
(``notifications/cancelled``).

Each step's idempotency key reaches its peer: the model call sends it as the
``Idempotency-Key`` header; a tool call sends it in the request's ``_meta``
(key :data:`~opex_trio.transports.base.EXECUTION_ID_META`), which HTTP
servers also get as the execution id header.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar

import attrs
import trio
from temporalio import activity
from temporalio.exceptions import ApplicationError

from .._exceptions import unwrap_single
from ..agent._tool_calls import TurnTools
from ..agent.chat import Chat
from ..agent.content import image_parts
from ..agent.events import ToolResult
from ..agent.hooks import BeforeToolCallHook, CustomToolExecutor
from ..errors import (
    APIStatusError,
    ConfigError,
    LLMError,
    RateLimitError,
)
from ..llm.client import Client
from ..llm.types import ToolCall
from ..mcp.call_meta import EXECUTION_ID_META, call_meta
from ..mcp.manager import SessionManager
from ._guest import TrioGuest
from .steps import (
    MODEL_ACTIVITY,
    TOOL_ACTIVITY,
    ModelOutcome,
    ModelStep,
    ToolOutcome,
    ToolStep,
)

__all__ = ["ChatActivities", "WorkerResources"]

logger = logging.getLogger("opex_trio.temporal")

R = TypeVar("R")

# How often trio code heartbeats when Temporal set no heartbeat timeout.
_DEFAULT_BEAT = 5.0


@attrs.frozen
class WorkerResources:
    """What a worker's trio side holds for its whole life: the LLM client and the MCP servers."""

    client: Client
    mcp: SessionManager


def _non_retryable(exc: BaseException) -> bool:
    """Errors for the program (a bad key, a bad request): trying again cannot help."""
    if isinstance(exc, ConfigError):
        return True
    if isinstance(exc, RateLimitError):
        return False
    return isinstance(exc, APIStatusError) and 400 <= exc.status < 500


async def _heartbeating(fn: Callable[[], Awaitable[R]]) -> R:
    """Run ``fn`` while a task heartbeats to Temporal, a few times per heartbeat timeout."""
    timeout = activity.info().heartbeat_timeout
    every = timeout.total_seconds() / 3 if timeout else _DEFAULT_BEAT
    result: list[R] = []

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await trio.sleep(every)

    # The step's own error, not a group around it: the worker decides from
    # its type whether trying again can help.
    with unwrap_single():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(beat)
            result.append(await fn())
            nursery.cancel_scope.cancel()
    return result[0]


class ChatActivities:
    """The model and tool activities of a worker, bound to its trio side.

    The worker-side options are those of :class:`opex_trio.Chat` that cannot
    travel in a workflow's history: the program's own tools (OpenAI tool dicts
    or MCP tools, as ``Chat`` takes them) and their executor,
    ``before_tool_call`` (these may do IO; they run again when a step is
    retried), and how tool results are shaped for the model.
    """

    def __init__(
        self,
        guest: TrioGuest[WorkerResources],
        *,
        custom_tools: Sequence[Any] = (),
        custom_tool_executor: CustomToolExecutor | None = None,
        before_tool_call: BeforeToolCallHook | None = None,
        max_result_chars: int | None = 20_000,
        strict_tools: bool = False,
        tool_images: Literal["describe", "attach"] = "describe",
    ) -> None:
        if custom_tools and custom_tool_executor is None:
            raise ConfigError("custom_tools need a custom_tool_executor to run them")
        self.guest = guest
        self.custom_tools = tuple(custom_tools)
        self.custom_tool_executor = custom_tool_executor
        self.before_tool_call = before_tool_call
        self.max_result_chars = max_result_chars
        self.strict_tools = strict_tools
        self.tool_images = tool_images

    def all(self) -> list[Callable[..., Any]]:
        """The activities to register with a Temporal worker."""
        return [self.model_call, self.tool_call]

    def _chat(
        self,
        resources: WorkerResources,
        step: ModelStep | ToolStep,
        on_progress: Callable[[Any], object] | None = None,
    ) -> Chat:
        return Chat(
            resources.client,
            mcp=resources.mcp,
            servers=step.servers,
            allow_tools=step.allow_tools,
            deny_tools=step.deny_tools,
            custom_tools=self.custom_tools,
            custom_tool_executor=self.custom_tool_executor,
            before_tool_call=self.before_tool_call,
            max_result_chars=self.max_result_chars,
            strict_tools=self.strict_tools,
            tool_images=self.tool_images,
            on_progress=on_progress,
        )

    async def _run(self, label: str, key: str, fn: Callable[[WorkerResources], Awaitable[R]]) -> R:
        info = activity.info()
        if info.attempt > 1:
            logger.info("%s %s: attempt %d", label, key, info.attempt)
        try:
            return await self.guest.run(lambda resources: _heartbeating(lambda: fn(resources)))
        except Exception as exc:
            if _non_retryable(exc):
                raise ApplicationError(
                    f"{label} failed: {exc}", type=type(exc).__name__, non_retryable=True
                ) from exc
            raise

    @activity.defn(name=MODEL_ACTIVITY)
    async def model_call(self, step: ModelStep) -> ModelOutcome:
        """One model call of a durable chat."""
        return await self._run("model call", step.key, lambda r: self._model(r, step))

    async def _model(self, resources: WorkerResources, step: ModelStep) -> ModelOutcome:
        options = dict(step.llm_options)
        headers = dict(options.pop("extra_headers", None) or {})
        headers["Idempotency-Key"] = step.key
        result = await self._chat(resources, step).chat(
            model=step.model,
            messages=step.messages,
            max_turns=1,
            execute_tools=False,
            parallel_tool_calls=step.parallel_tool_calls,
            extra_headers=headers,
            **options,
        )
        assert result.message is not None
        usage = result.usage
        return ModelOutcome(
            message=result.message,
            tool_calls=list(result.pending_tool_calls),
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
        )

    @activity.defn(name=TOOL_ACTIVITY)
    async def tool_call(self, step: ToolStep) -> ToolOutcome:
        """One tool call of a durable chat."""
        return await self._run("tool call", step.key, lambda r: self._tool(r, step))

    async def _tool(self, resources: WorkerResources, step: ToolStep) -> ToolOutcome:
        # Progress arrives in the task that reads the server's messages, which
        # does not run in this activity's context: heartbeat in ours.
        context = contextvars.copy_context()

        def progress(event: Any) -> None:
            context.run(activity.heartbeat, {"progress": event.progress, "total": event.total})

        chat = self._chat(resources, step, on_progress=progress)
        try:
            call = ToolCall.from_dict(step.call)
        except LLMError as exc:
            raise ApplicationError(
                f"the model's tool call is malformed: {exc}", non_retryable=True
            ) from exc
        with call_meta({EXECUTION_ID_META: step.key}):
            result = await run_tool_call(chat, call, step.context, step.timeout, step.turn)
        return ToolOutcome(
            tool_call_id=result.tool_call_id,
            name=result.name,
            server=result.server,
            arguments=dict(result.arguments) if result.arguments is not None else None,
            content=result.content,
            outcome=result.outcome,
            duration=result.duration,
            key=step.key,
            images=image_parts(result.raw) if self.tool_images == "attach" else [],
        )


async def run_tool_call(
    chat: Chat, call: ToolCall, context: Any, timeout: float | None, turn: int = 1
) -> ToolResult:
    """One tool call exactly as :class:`Chat`'s loop makes it, outside the loop."""
    tools = TurnTools(chat, None, turn, context, chat.tool_index(), timeout)
    return await tools.run_one(call)
