"""Tool calls a server runs as tasks: following each to its end, inside the caller's deadline.

Theory of operation
-------------------
The rules are sans IO, in :mod:`opex_trio.protocol.tasks`; this module does
the waiting and the sending for :meth:`~opex_trio.mcp.client.McpClient.call_tool`.

A modern server that declared ``io.modelcontextprotocol/tasks`` may answer a
``tools/call`` (every modern request of ours declares the extension) with a
task handle. A legacy 2025-11-25 server runs a call as a task only when asked
(a ``task`` member in the params), which the client does for tools whose
``execution.taskSupport`` is ``"required"``. Either way :func:`call_tool`
returns what the tool returned, as if no task had been involved:

* ``tasks/get`` is sent every ``pollIntervalMs`` (bounded) until the task
  ends; a legacy task that ends or needs input is waited for with
  ``tasks/result``, during which the server's requests for input reach the
  client's handlers as usual;
* the input a modern task asks for (``input_required``) is answered by the
  same handlers as any server request (elicitation, sampling, roots) and sent
  with ``tasks/update``, each key once;
* the whole run stays within the call's deadline, in one cancel scope whose
  deadline moves when the call's timeout is an idle one
  (``reset_on_progress``): a change of the task's status or status message
  counts as progress (it also reaches the caller's progress callback, since
  the extension has no progress notifications), as do a legacy task's
  ``notifications/progress`` (the call's progress token stays the task's);
* when the caller is cancelled or the deadline passes, the server gets
  ``tasks/cancel`` (never ``notifications/cancelled``) and the caller gets
  :class:`~opex_trio.errors.RequestTimeoutError` or its cancellation;
* a task that failed raises the server's JSON-RPC error as
  :class:`~opex_trio.errors.McpError` (a tool's own ``isError`` result is a
  completed task, returned like any result).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ..errors import ConfigError, McpError, OpexError, ProtocolError, RequestTimeoutError
from ..protocol.jsonrpc import Request
from ..protocol.legacy import HANDLED_REQUESTS
from ..protocol.tasks import (
    TASKS_EXTENSION,
    AnswerInputs,
    FetchResult,
    Finished,
    Poll,
    TaskFollower,
    legacy_task_support,
    task_handle,
)
from ..protocol.types import ProgressParams, ServerCapabilities
from ..protocol.versions import Era
from ._inbound import answer
from ._options import ProgressCallback

if TYPE_CHECKING:
    from .client import McpClient, _Timing

__all__ = ["call_tool", "follow", "runs_tasks"]

logger = logging.getLogger("opex_trio.mcp")

_CANCEL_BOUND = 5.0
"""How long ``tasks/cancel`` may take once the call is over (its caller does not wait longer)."""


def runs_tasks(capabilities: ServerCapabilities, era: Era | None) -> bool:
    """Whether a server declared that it runs tool calls as tasks (either era's way)."""
    if era is Era.MODERN:
        return bool(capabilities.extensions and TASKS_EXTENSION in capabilities.extensions)
    return legacy_task_support(capabilities.tasks, "tools/call")


async def call_tool(
    client: McpClient,
    name: str,
    params: Mapping[str, Any],
    timing: _Timing,
    progress: ProgressCallback | None,
    *,
    ask_task: bool,
) -> Mapping[str, Any]:
    """Send ``tools/call``; if a task answers it, follow the task and return its result.

    ``ask_task`` asks a legacy server for a task (the modern server decides alone).
    """
    features = client.features
    legacy = ask_task and (features is None or features.era is Era.LEGACY)
    if not legacy:
        result = await _send_call(client, name, params, timing, progress)
        handle = task_handle(result, legacy=False)
        if handle is None:
            return result  # the common case: nothing more to do
        return await follow(client, name, handle, timing, progress)
    clock = _Clock(timing)
    # 2025-11-25: the call's progress token stays valid for the task's whole life.
    token = client._progress_tokens()
    meta = {**(params.get("_meta") or {}), "progressToken": token}
    sent = {**params, "task": {}, "_meta": meta}

    def on_progress(update: ProgressParams) -> object:
        clock.touch()
        return progress(update) if progress is not None else None

    client._notices.progress[token] = on_progress
    try:
        first = attrs.evolve(
            timing,
            seconds=timing.seconds if timing.idle is None else timing.idle,
            deadline=clock.deadline(),
            idle=None,
        )
        result = await _send_call(client, name, sent, first, None)
        handle = task_handle(result, legacy=True)
        if handle is None:
            return result  # the server ran it at once after all
        follower = TaskFollower(handle, legacy=True)
        return await _Run(client, name, follower, clock, None).run()
    finally:
        client._notices.progress.pop(token, None)


async def follow(
    client: McpClient,
    name: str,
    handle: Mapping[str, Any],
    timing: _Timing,
    progress: ProgressCallback | None,
) -> Mapping[str, Any]:
    """Follow the task a modern server answered ``tools/call`` with; return the tool's result.

    :meth:`McpClient.call_tool` sends the call itself when it asks for no task
    (every tool call's path) and comes here only when a task handle answers it.
    """
    # The handle counts as progress: an idle deadline starts again from here.
    return await _Run(client, name, TaskFollower(handle), _Clock(timing), progress).run()


async def _send_call(
    client: McpClient,
    name: str,
    params: Mapping[str, Any],
    timing: _Timing,
    progress: ProgressCallback | None,
) -> Mapping[str, Any]:
    try:
        return await client._request("tools/call", params, timing, progress)
    except ConfigError as exc:
        # Raised where the request is encoded: the arguments cannot be sent.
        raise ConfigError(f"arguments of tool {name!r} cannot be sent: {exc}") from exc


class _Clock:
    """The deadline of a task run: the call's, or an idle one that progress moves."""

    def __init__(self, timing: _Timing) -> None:
        self.timing = timing
        self.last = trio.current_time()
        self.scope: trio.CancelScope | None = None

    def deadline(self) -> float:
        idle = self.timing.idle
        return self.timing.deadline if idle is None else min(self.timing.deadline, self.last + idle)

    def touch(self) -> None:
        self.last = trio.current_time()
        if self.scope is not None:
            self.scope.deadline = self.deadline()

    def expired_idle(self) -> bool:
        return self.timing.idle is not None and trio.current_time() < self.timing.deadline


class _Run:
    """One task followed to its end."""

    def __init__(
        self,
        client: McpClient,
        name: str,
        follower: TaskFollower,
        clock: _Clock,
        progress: ProgressCallback | None,
    ) -> None:
        self.client = client
        self.name = name
        self.follower = follower
        self.clock = clock
        self.progress = progress
        self.ended = follower.task.terminal
        self.changes = 0
        # Requests of the run wait as long as the run's scope allows.
        self.timing = attrs.evolve(clock.timing, deadline=math.inf, idle=None)

    @property
    def where(self) -> str:
        task = self.follower.task_id
        return f"MCP server {self.client.name!r}, task {task} of tool {self.name!r}"

    async def run(self) -> Mapping[str, Any]:
        logger.debug("%s: following it", self.where)
        with trio.CancelScope(deadline=self.clock.deadline()) as scope:
            self.clock.scope = scope
            try:
                return await self._follow()
            except BaseException:
                if not self.ended:
                    await self._cancel_on_server()
                raise
        timing = self.clock.timing
        if self.clock.expired_idle():
            raise RequestTimeoutError(
                f"{self.where} made no progress within {timing.idle:g} s; it was cancelled",
                method="tools/call",
                timeout=timing.idle,
            )
        seconds = timing.seconds if timing.seconds is not None else math.inf
        raise RequestTimeoutError(
            f"{self.where} did not finish within {seconds:g} s; it was cancelled",
            method="tools/call",
            timeout=timing.seconds,
        )

    async def _follow(self) -> Mapping[str, Any]:
        follower = self.follower
        step = follower.next_step()
        while True:
            if isinstance(step, Finished):
                self.ended = True
                if step.error is not None:
                    error = step.error
                    if isinstance(error, McpError):
                        error = error.located(method="tools/call", server=self.client.name)
                    raise error
                assert step.result is not None
                return step.result
            if isinstance(step, Poll):
                await trio.sleep(step.delay)
                step = self._observe(await self._send("tasks/get", step.params))
            elif isinstance(step, AnswerInputs):
                responses = {}
                declared = self.client.options.capabilities()
                for asked in step.requests:
                    if HANDLED_REQUESTS.get(asked.method) not in declared:
                        # As for a modern request's input: the server broke the rules.
                        raise ProtocolError(
                            f"{self.where} asked for {asked.method} input ({asked.key!r}), "
                            "which this client did not declare it can give"
                        )
                    request = Request(f"{follower.task_id}/{asked.key}", asked.method, asked.params)
                    responses[asked.key] = await answer(
                        self.client.options, request, self.client._requesting_server()
                    )
                await self._send("tasks/update", follower.update(responses))
                step = follower.next_step()
            else:
                assert isinstance(step, FetchResult)
                return await self._send("tasks/result", step.params)

    async def _send(self, method: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        try:
            return await self.client._request(method, params, self.timing, None)
        except McpError:
            # The server no longer knows the task (or it failed): nothing to cancel.
            self.ended = True
            raise

    def _observe(self, result: Mapping[str, Any]) -> Poll | AnswerInputs | FetchResult | Finished:
        before = self.follower.task.progress_key
        step = self.follower.observe(result)
        task = self.follower.task
        if task.progress_key != before:
            self.clock.touch()
            self.changes += 1
            if self.progress is not None:
                said = task.status_message
                message = task.status if said is None else f"{task.status}: {said}"
                update = ProgressParams(task.task_id, float(self.changes), message=message)
                self.client._notices._call_user(self.progress, update, "progress callback")
        if task.terminal and not isinstance(step, FetchResult):
            self.ended = True
        return step

    async def _cancel_on_server(self) -> None:
        """Send ``tasks/cancel``, briefly and whatever cancelled the call."""
        client = self.client
        if self.follower.legacy:
            tasks = client.capabilities.tasks or {}
            if "cancel" not in tasks:
                return
        with trio.CancelScope(shield=True), trio.move_on_after(_CANCEL_BOUND):
            try:
                await client._request("tasks/cancel", self.follower.cancel(), self.timing, None)
            except OpexError as exc:
                logger.info("%s: tasks/cancel failed: %s", self.where, exc)
            else:
                logger.debug("%s: cancelled", self.where)
