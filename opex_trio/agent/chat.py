"""The tool-calling chat loop.

Theory of operation
-------------------
:meth:`Chat.chat` alternates between the model and the tools until the model
answers without asking for tools, a hook says stop, or ``max_turns`` model
calls were made:

1. Ask the model, with every tool it may use (the MCP servers' tools through a
   :class:`~opex_trio.agent.tools.ToolIndex`, plus the program's own), and add
   its message to the conversation. ``on_assistant_message`` sees it.
2. If it asked for tools (and ``execute_tools`` is on), run the calls of that
   message (:mod:`opex_trio.agent._tool_calls`) concurrently in a nursery,
   each in a cancel scope of its own with ``tool_timeout``. Every failure
   (unknown tool, arguments that are not a JSON object, a denial, a timeout,
   an unavailable server, an error result, an exception in the program's
   executor) becomes a tool message the model can read and act on; nothing
   about a tool raises to the caller.
3. Add the tool messages in the order the model asked for the calls, each seen
   by ``on_tool_result``, and go back to 1.

Hooks are described in :mod:`opex_trio.agent.hooks`. Each fires exactly once
per message; an exception in a hook stops the chat and propagates with a note
naming the hook. Cancelling a chat cancels its running tools, and each MCP
server is told (``notifications/cancelled``). However many tools run at once,
the caller sees one exception, never a group: the hook's, or one
``trio.Cancelled``.

:meth:`Chat.stream` runs the same loop with streamed model calls and yields
events as they happen: text deltas, tool calls started, progressing and
finished, turns finished, and the final result. Progress reports of MCP tool
calls (``notifications/progress``) also go to the ``on_progress`` callback, in
either mode.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import trio

from .._exceptions import one_exception
from ..errors import ConfigError
from ..llm.client import Client
from ..llm.types import ChatCompletion, ContentDelta, Usage
from ..mcp.manager import SessionManager
from ..protocol.types import Tool
from ._skills import ChatSkills, custom_names
from ._tool_calls import TurnTools
from .content import image_parts
from .events import (
    ChatEvent,
    ChatFinished,
    ChatResult,
    Emit,
    OnProgress,
    StopReason,
    TextDelta,
    ToolFinished,
    ToolProgress,
    ToolResult,
    ToolStarted,
    TurnFinished,
)
from .hooks import (
    UNCHANGED,
    BeforeToolCallHook,
    Continue,
    CustomToolExecutor,
    OnAssistantMessage,
    OnToolResult,
    Stop,
    run_hook,
)
from .tools import ToolIndex, ToolRef

__all__ = [
    "Chat",
    "ChatEvent",
    "ChatFinished",
    "ChatResult",
    "OnProgress",
    "StopReason",
    "TextDelta",
    "ToolFinished",
    "ToolProgress",
    "ToolResult",
    "ToolStarted",
    "TurnFinished",
]

logger = logging.getLogger("opex_trio.agent")


def _add_usage(total: Usage, more: Usage | None) -> Usage:
    if more is None:
        return total

    def add(a: int | None, b: int | None) -> int | None:
        return b if a is None else a if b is None else a + b

    return Usage(
        prompt_tokens=add(total.prompt_tokens, more.prompt_tokens),
        completion_tokens=add(total.completion_tokens, more.completion_tokens),
        total_tokens=add(total.total_tokens, more.total_tokens),
    )


def _patterns(value: Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


class _Run:
    """The state of one chat call: conversation, context, usage, results."""

    def __init__(self, messages: list[dict[str, Any]], context: Any) -> None:
        self.messages = messages
        self.added: list[dict[str, Any]] = []
        self.context = context
        self.usage = Usage()
        self.results: list[ToolResult] = []
        self.turn = 0
        self.stop = False

    def add(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self.added.append(message)

    def apply(self, answer: Any, hook: str) -> None:
        if answer is None:
            return
        if isinstance(answer, Stop):
            self.stop = True
        elif not isinstance(answer, Continue):
            raise ConfigError(
                f"the {hook} hook returned {answer!r}; return None, Continue(...) or Stop(...)"
            )
        if answer.context is not UNCHANGED:
            self.context = answer.context


class Chat:
    """A tool-calling conversation with a model, over MCP servers and the program's own tools.

    ``client`` is the :class:`~opex_trio.llm.client.Client`; ``mcp`` an optional
    :class:`~opex_trio.mcp.manager.SessionManager` whose tools the model may
    use, limited to ``servers`` when given. ``allow_tools`` and ``deny_tools``
    are glob patterns matched against the name the model sees and against
    ``server/original_name`` (deny wins). ``custom_tools`` are the program's
    own tools as OpenAI tool dicts (or MCP :class:`~opex_trio.protocol.types.Tool`),
    run by ``custom_tool_executor``. See :mod:`opex_trio.agent.hooks` for the
    hooks. The remaining options are the defaults of :meth:`chat`;
    ``max_result_chars`` bounds a tool result's text, ``strict_tools`` asks for
    OpenAI strict schemas where possible, and ``tool_images="attach"`` passes
    images from tool results to the model as content parts (in a user message
    after the tool results) instead of describing them. ``on_progress``
    receives a :class:`ToolProgress` for each progress report of a running MCP
    tool call; it runs in the task that reads the server's messages, so it
    must return quickly (an ``async`` one runs in the background).
    With ``reset_tool_timeout_on_progress``, ``tool_timeout`` is the time an
    MCP tool may go without reporting progress, and ``max_tool_timeout``
    (``None``: no bound) bounds every tool call as a whole, the program's own
    tools included. With ``server_instructions``, the instructions the chat's
    MCP servers sent at their handshake follow the system prompt. With
    ``offer_skills``, the skills of the chat's MCP servers are offered to the
    model as one tool that loads the skill it chooses (see
    :mod:`opex_trio.agent._skills`).
    """

    def __init__(
        self,
        client: Client,
        *,
        mcp: SessionManager | None = None,
        servers: Sequence[str] | None = None,
        allow_tools: Iterable[str] | None = None,
        deny_tools: Iterable[str] = (),
        custom_tools: Sequence[Mapping[str, Any] | Tool] = (),
        custom_tool_executor: CustomToolExecutor | None = None,
        on_assistant_message: OnAssistantMessage | None = None,
        on_tool_result: OnToolResult | None = None,
        before_tool_call: BeforeToolCallHook | None = None,
        max_turns: int = 10,
        tool_timeout: float | None = 60.0,
        max_result_chars: int | None = 20_000,
        strict_tools: bool = False,
        tool_images: Literal["describe", "attach"] = "describe",
        on_progress: OnProgress | None = None,
        reset_tool_timeout_on_progress: bool = False,
        max_tool_timeout: float | None = None,
        server_instructions: bool = False,
        offer_skills: bool = False,
    ) -> None:
        if custom_tools and custom_tool_executor is None:
            raise ConfigError("custom_tools need a custom_tool_executor to run them")
        if max_turns < 1:
            raise ConfigError(f"max_turns must be at least 1, got {max_turns!r}")
        if offer_skills and mcp is None:
            raise ConfigError("offer_skills needs mcp, the SessionManager whose skills to offer")
        if on_progress is not None and not callable(on_progress):
            raise ConfigError(f"on_progress must be callable, got {on_progress!r}")
        self.client = client
        self.mcp = mcp
        self.servers = tuple(servers) if servers is not None else None
        self.allow_tools = _patterns(allow_tools)
        self.deny_tools = _patterns(deny_tools) or ()
        self.custom_tools = tuple(custom_tools)
        self.custom_tool_executor = custom_tool_executor
        self.on_assistant_message = on_assistant_message
        self.on_tool_result = on_tool_result
        self.before_tool_call = before_tool_call
        self.max_turns = max_turns
        self.tool_timeout = tool_timeout
        self.max_result_chars = max_result_chars
        self.strict_tools = strict_tools
        self.tool_images = tool_images
        self.on_progress = on_progress
        self.reset_tool_timeout_on_progress = reset_tool_timeout_on_progress
        self.max_tool_timeout = max_tool_timeout
        self.server_instructions = server_instructions
        self._skills = ChatSkills(mcp) if offer_skills and mcp is not None else None
        self._index_key: Any = None
        self._index: ToolIndex | None = None
        # Fail on bad custom tools now, not at the first turn.
        self.tool_index()

    # -- tools

    def tool_index(self) -> ToolIndex:
        """Every tool the model may use now (rebuilt when the servers' tools change)."""
        registry = {}
        if self.mcp is not None:
            registry = self.mcp.tools(*self.servers) if self.servers else self.mcp.tools()
            if self.servers is not None:
                registry = {k: v for k, v in registry.items() if v.server in self.servers}
        # Comparing the tuples is cheap when nothing changed: the tool objects
        # are the same ones, and equality checks identity first.
        key = (
            tuple((r.server, r.tool) for r in registry.values()),
            self._skills.key() if self._skills is not None else (),
        )
        if self._index is not None and key == self._index_key:
            return self._index
        custom = self.custom_tools
        if self._skills is not None:
            taken = {r.tool.name for r in registry.values()} | set(registry)
            custom += self._skills.tools(taken | custom_names(custom))
        by_server: dict[str, list[Tool]] = {}
        for registered in registry.values():
            # Such a tool runs only as a task: offered when its server runs tasks.
            if registered.tool.task_support == "required" and not self._runs_tasks(
                registered.server
            ):
                continue
            by_server.setdefault(registered.server, []).append(registered.tool)
        index = ToolIndex.from_servers(by_server, custom, strict=self.strict_tools)
        self._index, self._index_key = index, key
        return index

    def _runs_tasks(self, server: str) -> bool:
        assert self.mcp is not None
        return self.mcp.status(server).runs_tasks

    def _allowed(self, ref: ToolRef) -> bool:
        names = [ref.name]
        if ref.server is not None:
            names.append(f"{ref.server}/{ref.original_name}")

        def matches(patterns: Iterable[str]) -> bool:
            return any(fnmatch.fnmatchcase(n, p) for n in names for p in patterns)

        if matches(self.deny_tools):
            return False
        return self.allow_tools is None or matches(self.allow_tools)

    def _tools_for_model(self, index: ToolIndex) -> list[dict[str, Any]]:
        return [ref.to_openai() for ref in index.values() if self._allowed(ref)]

    def _instructions(self) -> list[str]:
        """The instructions of the chat's servers, when the option passes them on."""
        if not self.server_instructions or self.mcp is None:
            return []
        return [
            f"Instructions from the MCP server {status.id!r}:\n{status.instructions}"
            for status in self.mcp.servers()
            if status.instructions and (self.servers is None or status.id in self.servers)
        ]

    # -- the loop

    async def chat(
        self,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        system_prompt: str | None = None,
        execute_tools: bool = True,
        context: Any = None,
        max_turns: int | None = None,
        tool_timeout: float | Literal["default"] | None = "default",
        parallel_tool_calls: bool = True,
        tool_result_role: str = "tool",
        **llm_options: Any,
    ) -> ChatResult:
        """Run the conversation until the model answers; see the module docstring.

        ``messages`` are OpenAI message dicts (they are not changed; the
        result says what was added). ``llm_options`` go to the model request
        (``temperature``, ``max_tokens``, ``tool_choice``, ...); a forced
        ``tool_choice`` (``"required"`` or a named function) applies to the
        first turn only, later turns use ``"auto"``.
        """
        return await self._run(
            None,
            model=model,
            messages=messages,
            system_prompt=system_prompt,
            execute_tools=execute_tools,
            context=context,
            max_turns=max_turns,
            tool_timeout=tool_timeout,
            parallel_tool_calls=parallel_tool_calls,
            tool_result_role=tool_result_role,
            llm_options=llm_options,
        )

    @asynccontextmanager
    async def stream(
        self,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        system_prompt: str | None = None,
        execute_tools: bool = True,
        context: Any = None,
        max_turns: int | None = None,
        tool_timeout: float | Literal["default"] | None = "default",
        parallel_tool_calls: bool = True,
        tool_result_role: str = "tool",
        buffer: int = 1024,
        **llm_options: Any,
    ) -> AsyncIterator[trio.MemoryReceiveChannel[ChatEvent]]:
        """Run the same loop with streamed model calls; iterate the events it yields.

        ::

            async with chat.stream(model=..., messages=...) as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        print(event.text, end="")

        The last event is :class:`ChatFinished`. An error in the loop is raised
        from the ``async with``; leaving the block early cancels the chat. An
        exception raised in the block comes out of it unchanged, and a
        cancellation as one ``trio.Cancelled``.
        """
        send, receive = trio.open_memory_channel[ChatEvent](buffer)
        failure: list[BaseException] = []

        def emit(event: ChatEvent) -> None:
            try:
                send.send_nowait(event)
            except trio.WouldBlock:
                logger.warning("a chat stream reader fell %d events behind; dropped one", buffer)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                pass

        async def run() -> None:
            async with send:
                try:
                    await self._run(
                        emit,
                        model=model,
                        messages=messages,
                        system_prompt=system_prompt,
                        execute_tools=execute_tools,
                        context=context,
                        max_turns=max_turns,
                        tool_timeout=tool_timeout,
                        parallel_tool_calls=parallel_tool_calls,
                        tool_result_role=tool_result_role,
                        llm_options=llm_options,
                    )
                except Exception as exc:  # noqa: BLE001 - raised again from the async with
                    failure.append(exc)

        # The block runs inside our nursery; what it raises comes back as it
        # is, not in the group trio would wrap it in.
        raised: list[BaseException] = []
        with one_exception(raised):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run)
                try:
                    async with receive:
                        yield receive
                except BaseException as exc:
                    raised.append(exc)
                    raise
                finally:
                    nursery.cancel_scope.cancel()
        if failure:
            raise failure[0]

    async def _run(
        self,
        emit: Emit | None,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        system_prompt: str | None,
        execute_tools: bool,
        context: Any,
        max_turns: int | None,
        tool_timeout: float | Literal["default"] | None,
        parallel_tool_calls: bool,
        tool_result_role: str,
        llm_options: Mapping[str, Any],
    ) -> ChatResult:
        turns = self.max_turns if max_turns is None else max_turns
        if turns < 1:
            raise ConfigError(f"max_turns must be at least 1, got {turns!r}")
        timeout = self.tool_timeout if tool_timeout == "default" else tool_timeout
        conversation = [dict(m) for m in messages]
        system = "\n\n".join(filter(None, [system_prompt, *self._instructions()]))
        if system:
            conversation.insert(0, {"role": "system", "content": system})
        run = _Run(conversation, context)
        if self._skills is not None:
            await self._skills.refresh(self.servers)
        reason: StopReason = "max_turns"
        message: dict[str, Any] | None = None
        pending: tuple[dict[str, Any], ...] = ()
        while run.turn < turns:
            run.turn += 1
            index = self.tool_index()
            tools = self._tools_for_model(index)
            completion = await self._ask(emit, run, model, tools, parallel_tool_calls, llm_options)
            run.usage = _add_usage(run.usage, completion.usage)
            assistant = completion.message
            message = assistant.to_dict()
            if message.get("content") is None:
                # Empty text instead of null: OpenAI takes both, but some
                # compatible servers (llama.cpp's) reject a null sent back.
                message["content"] = ""
            run.add(message)
            if self.on_assistant_message is not None:
                answer = await run_hook(
                    "on_assistant_message", self.on_assistant_message, message, run.context
                )
                run.apply(answer, "on_assistant_message")
            calls = assistant.tool_calls
            if run.stop:
                # The hook ends the chat here; tool calls it carries are not
                # run but handed back, as with execute_tools=False.
                reason = "stopped_by_hook"
                pending = tuple(call.to_dict() for call in calls)
                break
            if not calls:
                reason = "answered"
                break
            if not execute_tools:
                reason = "tool_calls_returned"
                pending = tuple(call.to_dict() for call in calls)
                break
            tools_of_turn = TurnTools(self, emit, run.turn, run.context, index, timeout)
            results = await tools_of_turn.run(calls, parallel_tool_calls)
            stop = await self._add_results(run, results, tool_result_role)
            if emit is not None:
                emit(TurnFinished(run.turn, message))
            if stop:
                reason = "stopped_by_hook"
                break
        result = ChatResult(
            message=message,
            messages=tuple(run.added),
            tool_calls=tuple(run.results),
            usage=run.usage,
            stop_reason=reason,
            turns=run.turn,
            context=run.context,
            pending_tool_calls=pending,
        )
        if emit is not None:
            emit(ChatFinished(run.turn, result))
        return result

    async def _ask(
        self,
        emit: Emit | None,
        run: _Run,
        model: str,
        tools: list[dict[str, Any]],
        parallel_tool_calls: bool,
        llm_options: Mapping[str, Any],
    ) -> ChatCompletion:
        options = dict(llm_options)
        forced = options.get("tool_choice")
        if run.turn > 1 and forced is not None and forced not in ("auto", "none"):
            # A forced tool choice ("required" or one function) applies to the
            # first turn; kept for every turn, the model could never answer.
            options["tool_choice"] = "auto"
        if tools and not parallel_tool_calls:
            options.setdefault("parallel_tool_calls", False)
        if not tools:
            options.pop("tool_choice", None)
        if emit is None:
            return await self.client.chat_completion(
                model=model, messages=run.messages, tools=tools or None, **options
            )
        async with self.client.stream_chat(
            model=model, messages=run.messages, tools=tools or None, **options
        ) as stream:
            async for event in stream:
                if isinstance(event, ContentDelta) and event.text:
                    emit(TextDelta(run.turn, event.text))
            return await stream.get_final_completion()

    async def _add_results(self, run: _Run, results: list[ToolResult], role: str) -> bool:
        """Add the tool messages and run ``on_tool_result``; True when a hook said stop."""
        images: list[dict[str, Any]] = []
        for result in results:
            if role == "tool":
                message = {
                    "role": "tool",
                    "tool_call_id": result.tool_call_id,
                    "content": result.content,
                }
            else:
                message = {
                    "role": role,
                    "content": f"[result of tool {result.name}, call {result.tool_call_id}]\n"
                    + result.content,
                }
            run.add(message)
            run.results.append(result)
            if self.tool_images == "attach":
                images.extend(image_parts(result.raw))
        if images:
            run.add(
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "Images returned by the tools:"}, *images],
                }
            )
        if self.on_tool_result is not None:
            for result in results:
                answer = await run_hook(
                    "on_tool_result",
                    self.on_tool_result,
                    result.tool_call_id,
                    result.name,
                    result,
                    run.context,
                )
                run.apply(answer, "on_tool_result")
        return run.stop
