"""Chat workflows with hooks, for the tests (a module of their own: Temporal's sandbox loads it)."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

from opex_trio import Continue, Stop
from opex_trio.temporal import ChatSpec, ChatWorkflow, DurableResult, ToolOutcome


@workflow.defn(name="test.hooked_chat")
class HookedChat(ChatWorkflow):
    """Stops after the second tool result; counts results in the context."""

    @workflow.run
    async def run(self, spec: ChatSpec) -> DurableResult:
        return await super().run(spec)

    def on_tool_result(self, result: ToolOutcome, context: Any) -> Continue | Stop | None:
        seen = (context or 0) + 1
        return Stop(context=seen) if seen == 2 else Continue(context=seen)


@workflow.defn(name="test.stop_at_once")
class StopAtOnce(ChatWorkflow):
    """Stops at the first assistant message."""

    @workflow.run
    async def run(self, spec: ChatSpec) -> DurableResult:
        return await super().run(spec)

    def on_assistant_message(self, message: dict[str, Any], context: Any) -> Continue | Stop | None:
        return Stop(context="stopped")
