"""Running the tool calls of one turn of a chat.

Theory of operation
-------------------
:class:`TurnTools` takes the calls of one assistant message and runs them,
concurrently in a nursery when there are several and the chat allows parallel
calls, each in a cancel scope of its own with the turn's tool timeout. A call
goes to the program's ``custom_tool_executor`` first, then (when that says it
is not its tool) to the MCP server the :class:`~opex_trio.agent.tools.ToolIndex`
names. Every failure of a tool becomes a :class:`~opex_trio.agent.events.ToolResult`
the model reads; only a hook that raises stops the chat.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import trio

from .. import telemetry
from .._exceptions import one_exception
from ..errors import (
    ConfigError,
    McpError,
    OpexError,
    ProtocolError,
    RequestTimeoutError,
    ServerUnavailableError,
    TransportError,
    UsageError,
)
from ..llm.types import ToolCall
from ..mcp.output_schema import MISMATCH_META
from ..protocol.types import CallToolResult, ProgressParams
from .content import tool_message_content
from .events import Emit, ToolFinished, ToolOutcome, ToolProgress, ToolResult, ToolStarted
from .hooks import NOT_MINE, Approve, Deny, NotMine, Rewrite, call_hook, run_hook
from .tools import ToolIndex, ToolRef

if TYPE_CHECKING:
    from .chat import Chat

__all__ = ["TurnTools", "parse_arguments"]

logger = logging.getLogger("opex_trio.agent")


class TurnTools:
    """Runs the tool calls of one turn for ``chat``; see the module docstring."""

    def __init__(
        self,
        chat: Chat,
        emit: Emit | None,
        turn: int,
        context: Any,
        index: ToolIndex,
        timeout: float | None,
    ) -> None:
        self.chat = chat
        self.emit = emit
        self.turn = turn
        self.context = context
        self.index = index
        self.timeout = timeout

    async def run(self, calls: Sequence[ToolCall], parallel: bool) -> list[ToolResult]:
        """Run ``calls`` and return their results in the order of the calls.

        A hook that raises stops the other calls of the turn, and its
        exception is raised alone, as the object it is, however many calls
        ran; a cancellation from outside is one ``Cancelled``.
        """
        results: list[ToolResult | None] = [None] * len(calls)
        if not parallel or len(calls) < 2:
            for position, call in enumerate(calls):
                results[position] = await self.run_one(call)
            return _all_done(results)
        failures: list[Exception] = []

        async def one(position: int, call: ToolCall, scope: trio.CancelScope) -> None:
            if failures:
                return  # a sibling's hook failed before this call started
            try:
                results[position] = await self.run_one(call)
            except Exception as exc:  # noqa: BLE001 - raised again below, alone
                failures.append(exc)
                scope.cancel()

        with one_exception():
            async with trio.open_nursery() as nursery:
                for position, call in enumerate(calls):
                    nursery.start_soon(one, position, call, nursery.cancel_scope)
        if failures:
            first = failures[0]
            if len(failures) > 1:
                first.add_note(f"{len(failures) - 1} other call(s) of this turn failed too")
            raise first
        return _all_done(results)

    async def run_one(self, call: ToolCall) -> ToolResult:
        """Run one call; every failure of the tool is a result, a hook's exception raises."""
        chat, emit, index, timeout = self.chat, self.emit, self.index, self.timeout
        start = trio.current_time()
        name = call.name
        ref = index.get(name)
        server = ref.server if ref is not None else None
        arguments, problem = parse_arguments(call)
        if emit is not None:
            emit(ToolStarted(self.turn, call.id, name, arguments))
        if telemetry.enabled():
            telemetry.emit(telemetry.ToolCallStarted(tool=name, server=server, call_id=call.id))

        def finish(
            content: str,
            outcome: ToolOutcome,
            raw: Any = None,
            error: BaseException | None = None,
            server: str | None = server,
            args: Mapping[str, Any] | None = arguments,
        ) -> ToolResult:
            result = ToolResult(
                tool_call_id=call.id,
                name=name,
                server=server,
                arguments=args,
                content=content,
                outcome=outcome,
                raw=raw,
                error=error,
                duration=trio.current_time() - start,
            )
            if telemetry.enabled():
                telemetry.emit(
                    telemetry.ToolCallFinished(
                        tool=name,
                        server=server,
                        outcome=outcome,
                        duration=result.duration,
                        call_id=call.id,
                        error=error,
                    )
                )
            if emit is not None:
                emit(ToolFinished(self.turn, result))
            return result

        if problem is not None:
            return finish(f"Error: {problem}", "bad_arguments", args=None)
        assert arguments is not None
        if ref is not None and not chat._allowed(ref):
            ref = None
        if ref is None and chat.custom_tool_executor is None:
            return finish(self._unknown(name), "unknown_tool", server=None)
        if chat.before_tool_call is not None:
            verdict = await run_hook(
                "before_tool_call", chat.before_tool_call, name, dict(arguments), self.context
            )
            if isinstance(verdict, Deny):
                return finish(f"Error: the call was not run: {verdict.reason}", "denied")
            if isinstance(verdict, Rewrite):
                arguments = dict(verdict.arguments)
            elif verdict is not None and not isinstance(verdict, Approve):
                raise ConfigError(
                    f"the before_tool_call hook returned {verdict!r}; "
                    "return None, Approve(), Deny(reason) or Rewrite(arguments)"
                )
        progress = self._progress_reporter(call.id, name, server)
        # With resets, the MCP call keeps the idle deadline and the scope
        # bounds the whole call.
        idle = timeout if chat.reset_tool_timeout_on_progress else None
        bound = chat.max_tool_timeout if idle is not None else timeout
        try:
            with trio.move_on_after(bound if bound is not None else float("inf")) as scope:
                handled, value = await self._execute(name, arguments, ref, progress, idle)
        except UsageError:
            raise  # a closed manager or client is the program's bug, not the tool's
        except RequestTimeoutError as exc:
            return finish(f"Error: {exc}", "timeout", error=exc)
        except ServerUnavailableError as exc:
            return finish(
                f"Error: the tool's server is not available: {exc}", "unavailable", error=exc
            )
        except (McpError, TransportError, OpexError) as exc:
            return finish(f"Error: the tool call failed: {exc}", "error", error=exc)
        except Exception as exc:
            # An outcome the model reads and acts on, not a crash: one line, and
            # the traceback only for whoever debugs the tool.
            logger.warning(
                "the tool %r failed; the model is told: %s: %s", name, type(exc).__name__, exc
            )
            logger.debug("the failure of the tool %r", name, exc_info=exc)
            return finish(f"Error: the tool failed: {exc}", "error", error=exc)
        if scope.cancelled_caught:
            assert bound is not None
            return finish(f"Error: the tool did not finish within {bound:g} s", "timeout")
        if not handled:
            return finish(self._unknown(name), "unknown_tool", server=None)
        content = tool_message_content(value, max_chars=chat.max_result_chars)
        failed = isinstance(value, CallToolResult) and value.is_error
        mismatch = value.meta.get(MISMATCH_META) if failed and value.meta else None
        error = ProtocolError(str(mismatch)) if mismatch is not None else None
        return finish(content, "error" if failed else "ok", raw=value, error=error)

    def _progress_reporter(
        self, call_id: str, name: str, server: str | None
    ) -> Callable[[ProgressParams], object] | None:
        """The MCP progress callback of one call, or ``None`` when nobody listens."""
        emit, turn = self.emit, self.turn
        on_progress = self.chat.on_progress
        if emit is None and on_progress is None:
            return None

        def report(params: ProgressParams) -> object:
            event = ToolProgress(
                turn, call_id, name, server, params.progress, params.total, params.message
            )
            if emit is not None:
                emit(event)
            # An awaitable result is run in the background by the MCP client.
            return on_progress(event) if on_progress is not None else None

        return report

    async def _execute(
        self,
        name: str,
        arguments: dict[str, Any],
        ref: ToolRef | None,
        progress: Callable[[ProgressParams], object] | None,
        idle: float | None = None,
    ) -> tuple[bool, Any]:
        """Run one call: the skill tool, the program's executor, then the MCP server."""
        chat = self.chat
        skills = chat._skills
        skill_tool = skills.tool_name if skills is not None else None
        if ref is not None and ref.server is None and ref.original_name == skill_tool:
            assert skills is not None
            return True, await skills.call(arguments)
        if chat.custom_tool_executor is not None:
            try:
                value = await call_hook(chat.custom_tool_executor, name, arguments, self.context)
            except NotMine:
                value = NOT_MINE
            if value is not NOT_MINE:
                return True, value
        if ref is None or ref.server is None or chat.mcp is None:
            return False, None
        result = await chat.mcp.call_tool(
            ref.server,
            ref.original_name,
            ref.call_arguments(arguments),
            timeout=idle,
            progress=progress,
            reset_on_progress=idle is not None,
            max_total_timeout=None,
        )
        return True, result

    def _unknown(self, name: str) -> str:
        known = sorted(ref.name for ref in self.index.values() if self.chat._allowed(ref))
        listing = ", ".join(known[:50]) + (" ..." if len(known) > 50 else "")
        return f"Error: there is no tool named {name!r}. Available tools: {listing or 'none'}"


def _all_done(results: list[ToolResult | None]) -> list[ToolResult]:
    done = [r for r in results if r is not None]
    assert len(done) == len(results)
    return done


def parse_arguments(call: ToolCall) -> tuple[dict[str, Any] | None, str | None]:
    """The call's arguments as a dict, or ``None`` and what is wrong with them."""
    text = call.arguments
    if not text.strip():
        return {}, None
    try:
        value = json.loads(text)
    except ValueError as exc:
        return None, (
            f"the arguments of tool {call.name!r} are not valid JSON ({exc}); send a JSON object"
        )
    if not isinstance(value, dict):
        return None, (
            f"the arguments of tool {call.name!r} must be a JSON object, got {type(value).__name__}"
        )
    return value, None
