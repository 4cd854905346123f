"""Durable chats from a plain trio program: start one, follow it, wait for it, cancel it.

Temporal's Python client runs on asyncio; :class:`DurableChats` runs it on an
asyncio loop in a thread of its own that lives exactly as long as the
``async with``, and turns each call into a trio call: awaiting it is a trio
checkpoint, cancelling it (a trio cancel scope) cancels the asyncio call::

    async with DurableChats("127.0.0.1:7233", task_queue="opex-trio") as chats:
        run = await chats.start(ChatSpec(model="m", messages=[...]))
        async for event in run.events():
            print(event.kind)
        result = await run.result()

:meth:`DurableRun.cancel` asks the run to stop: the running model or tool call
is cancelled on its worker (an MCP server is told, ``notifications/cancelled``)
and :meth:`DurableRun.result` then raises :class:`RunCancelledError`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import trio
from temporalio.client import Client as TemporalClient
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError as TemporalCancelledError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from ..errors import ConfigError, OpexError, UsageError
from .steps import WORKFLOW_NAME, ChatSpec, DurableEvent, DurableResult

__all__ = [
    "ClusterUnavailableError",
    "DurableChats",
    "DurableRun",
    "RunCancelledError",
    "RunFailedError",
]

R = TypeVar("R")


class ClusterUnavailableError(OpexError):
    """The Temporal cluster could not be reached, or refused a call (its ``__cause__`` says why)."""


class RunFailedError(OpexError):
    """A durable chat ended in failure (its ``__cause__`` is Temporal's account of it)."""


class RunCancelledError(RunFailedError):
    """A durable chat was cancelled."""


class _Loop:
    """An asyncio loop in a thread, and trio calls into it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="opex-trio-temporal", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    async def call(self, fn: Callable[[], Awaitable[R]]) -> R:
        async def wrapped() -> R:
            return await fn()

        future = asyncio.run_coroutine_threadsafe(wrapped(), self.loop)
        token = trio.lowlevel.current_trio_token()
        finished = trio.Event()

        def wake(_: concurrent.futures.Future[R]) -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(finished.set)

        future.add_done_callback(wake)
        try:
            await finished.wait()
        except trio.Cancelled:
            future.cancel()
            with trio.CancelScope(shield=True):
                await finished.wait()
            raise
        try:
            return future.result()
        except WorkflowAlreadyStartedError as exc:
            raise ConfigError(f"a durable chat with id {exc.workflow_id!r} already exists") from exc
        except RPCError as exc:
            # A refused or failed call to the cluster (unreachable, unknown
            # namespace, no such run): Temporal's words, one typed error.
            raise ClusterUnavailableError(f"Temporal refused the call: {exc}") from exc

    async def close(self) -> None:
        async def drain() -> None:
            # Calls still running (a caller gave up on them) end here, not
            # as tasks destroyed with the loop.
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        drained = asyncio.run_coroutine_threadsafe(drain(), self.loop)
        await trio.to_thread.run_sync(drained.result)
        self.loop.call_soon_threadsafe(self.loop.stop)
        await trio.to_thread.run_sync(self.thread.join)
        self.loop.close()


class DurableRun:
    """One durable chat: its id, its events, its result."""

    def __init__(self, loop: _Loop, handle: WorkflowHandle[Any, DurableResult]) -> None:
        self._loop = loop
        self._handle = handle

    @property
    def id(self) -> str:
        """The workflow id."""
        return self._handle.id

    @property
    def run_id(self) -> str | None:
        """The id of the workflow run this handle follows (it makes the steps' keys)."""
        return self._handle.result_run_id or self._handle.run_id

    async def result(self) -> DurableResult:
        """Wait for the chat to end and return what it produced.

        Raises :class:`RunCancelledError` when it was cancelled and
        :class:`RunFailedError` when it failed.
        """
        try:
            return await self._loop.call(self._handle.result)
        except WorkflowFailureError as exc:
            if isinstance(exc.cause, TemporalCancelledError):
                raise RunCancelledError(f"durable chat {self.id!r} was cancelled") from exc
            root: BaseException = exc
            while isinstance(getattr(root, "cause", None), BaseException):
                root = root.cause  # type: ignore[attr-defined]
            text = str(root)
            kind = getattr(root, "type", None) or type(root).__name__
            if not text.startswith(kind):
                text = f"{kind}: {text}"
            raise RunFailedError(f"durable chat {self.id!r} failed: {text}") from exc

    async def cancel(self) -> None:
        """Ask the chat to stop; its running call is cancelled on its worker."""
        await self._loop.call(self._handle.cancel)

    async def events(self, *, poll: float = 0.2) -> AsyncIterator[DurableEvent]:
        """Every event of the chat, from its start, until ``chat_finished`` or the run ends.

        It asks the run for new events every ``poll`` seconds (a query, which
        adds nothing to the run's history).
        """
        seen = 0
        while True:
            batch = await self._loop.call(functools.partial(self._query, seen))
            for event in batch:
                seen = event.seq + 1
                yield event
                if event.kind == "chat_finished":
                    return
            if not batch and await self._loop.call(self._ended):
                # Ended without finishing (cancelled, failed): nothing more comes.
                for event in await self._loop.call(functools.partial(self._query, seen)):
                    yield event
                return
            await trio.sleep(poll)

    async def _query(self, since: int) -> list[DurableEvent]:
        events: list[DurableEvent] = await self._handle.query(
            "opex_trio.events", since, result_type=list[DurableEvent]
        )
        return events

    async def _ended(self) -> bool:
        description = await self._handle.describe()
        return description.close_time is not None


class DurableChats:
    """A connection to Temporal for starting and following durable chats, from trio.

    ``address``, ``namespace`` and ``task_queue`` say where the workers poll.
    """

    def __init__(
        self,
        address: str = "127.0.0.1:7233",
        *,
        namespace: str = "default",
        task_queue: str = "opex-trio",
    ) -> None:
        self.address = address
        self.namespace = namespace
        self.task_queue = task_queue
        self._loop: _Loop | None = None
        self._client: TemporalClient | None = None

    async def __aenter__(self) -> DurableChats:
        loop = _Loop()
        loop.start()
        try:
            self._client = await loop.call(
                lambda: TemporalClient.connect(self.address, namespace=self.namespace)
            )
        except RuntimeError as exc:
            with trio.CancelScope(shield=True):
                await loop.close()
            raise ClusterUnavailableError(
                f"cannot connect to Temporal at {self.address!r}: {exc}"
            ) from exc
        except BaseException:
            with trio.CancelScope(shield=True):
                await loop.close()
            raise
        self._loop = loop
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        loop, self._loop, self._client = self._loop, None, None
        if loop is not None:
            with trio.CancelScope(shield=True):
                await loop.close()

    def _open(self) -> tuple[_Loop, TemporalClient]:
        if self._loop is None or self._client is None:
            raise UsageError("DurableChats is used outside its 'async with': open it first")
        return self._loop, self._client

    async def start(
        self, spec: ChatSpec, *, id: str | None = None, workflow: str = WORKFLOW_NAME
    ) -> DurableRun:
        """Start a durable chat; ``workflow`` names a workflow with hooks of its own."""
        loop, client = self._open()
        run_id = id or f"opex-chat-{uuid.uuid4()}"
        handle = await loop.call(
            lambda: client.start_workflow(
                workflow,
                spec,
                id=run_id,
                task_queue=self.task_queue,
                result_type=DurableResult,
            )
        )
        return DurableRun(loop, handle)

    def get(self, id: str) -> DurableRun:
        """A chat started earlier, by its id."""
        loop, client = self._open()
        return DurableRun(loop, client.get_workflow_handle(id, result_type=DurableResult))

    async def chat(self, spec: ChatSpec, *, id: str | None = None) -> DurableResult:
        """Start a durable chat and wait for its result."""
        run = await self.start(spec, id=id)
        return await run.result()
