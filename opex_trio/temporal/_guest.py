"""Trio as a guest in the worker's asyncio loop: long-lived trio resources, jobs from asyncio.

Theory of operation
-------------------
Temporal's worker runs on asyncio; opex_trio's clients run on trio.
:class:`TrioGuest` starts trio in guest mode (:func:`trio.lowlevel.start_guest_run`)
inside the running asyncio loop, on the same thread: trio's tasks run as
callbacks of the asyncio loop, so no thread hops and no locks. The trio side
opens the resources (an async context manager: the LLM client, the
SessionManager with its servers) once, then waits; :meth:`TrioGuest.run`
hands it a job (an async function of those resources), which runs as a task
in the trio side's nursery, in the contextvars of the asyncio caller (so
code in the job can see the caller's activity context) and inside a cancel
scope of its own. When the asyncio caller is cancelled (Temporal cancelled
the activity, or the worker is shutting down), the job's scope is cancelled
and the caller waits for the job to finish unwinding, so the MCP server has
been told (``notifications/cancelled``) before the activity reports back.
:meth:`TrioGuest.stop` ends the trio side: running jobs are cancelled, the
resources are closed (every server process stopped), and it returns once
trio has finished.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Generic, TypeVar

import outcome
import trio

from ..errors import OpexError, UsageError

__all__ = ["TrioGuest"]

R = TypeVar("R")
T = TypeVar("T")


class _Job(Generic[R]):
    def __init__(self, fn: Callable[[], Awaitable[R]], done: asyncio.Future[R]) -> None:
        self.fn = fn
        self.done = done
        self.scope = trio.CancelScope()

    async def run(self) -> None:
        try:
            with self.scope:
                value = await self.fn()
                if not self.done.done():
                    self.done.set_result(value)
        except Exception as exc:  # noqa: BLE001 - handed to the asyncio caller
            if not self.done.done():
                self.done.set_exception(exc)
        finally:
            # Cancelled (by the caller, or because the trio side is stopping).
            if not self.done.done():
                self.done.cancel()


class TrioGuest(Generic[T]):
    """A trio run inside the current asyncio loop, holding resources of type ``T``.

    ``resources`` is called in trio to make the async context manager that
    opens them; it stays open until :meth:`stop`.
    """

    def __init__(self, resources: Callable[[], AbstractAsyncContextManager[T]]) -> None:
        self._resources = resources
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._value: T | None = None
        self._stop: trio.Event | None = None
        self._finished: asyncio.Future[None] | None = None

    @property
    def resources(self) -> T:
        """The open resources (only between :meth:`start` and :meth:`stop`)."""
        if self._value is None:
            raise UsageError("the trio side is not running")
        return self._value

    async def start(self) -> None:
        """Start trio and open the resources; raises what opening them raised."""
        if self._finished is not None:
            raise UsageError("the trio side was already started")
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        finished: asyncio.Future[None] = loop.create_future()
        self._finished = finished

        def done(result: outcome.Outcome[None]) -> None:
            error = result.error if isinstance(result, outcome.Error) else None
            if not ready.done():
                # Ended while starting: start() raises what ended it.
                if error is not None:
                    ready.set_exception(error)
                else:
                    ready.set_result(None)
                finished.set_result(None)
            elif error is not None:
                finished.set_exception(error)
            else:
                finished.set_result(None)

        trio.lowlevel.start_guest_run(
            self._main,
            ready,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=loop.call_soon,
            done_callback=done,
            # asyncio owns the signal wakeup fd (its signal handlers stop the worker).
            host_uses_signal_set_wakeup_fd=True,
        )
        await ready
        if self._value is None:
            # The resources closed before they were ready (an error, or stop()).
            await finished
            raise OpexError("the trio side ended while it was starting")

    async def _main(self, ready: asyncio.Future[None]) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with self._resources() as value, trio.open_nursery() as nursery:
            self._value, self._nursery = value, nursery
            if not ready.done():
                ready.set_result(None)
            await self._stop.wait()
            nursery.cancel_scope.cancel()
        self._value = self._nursery = None

    async def run(self, fn: Callable[[T], Awaitable[R]]) -> R:
        """Run ``fn(resources)`` as a trio task; cancelling the caller cancels it."""
        token, nursery, value = self._token, self._nursery, self.resources
        if token is None or nursery is None:
            raise UsageError("the trio side is not running")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[R] = loop.create_future()
        job = _Job(lambda: fn(value), done)
        context = contextvars.copy_context()

        # start_soon copies the current context into the new task: calling it
        # inside the caller's context gives the job the caller's contextvars.
        def spawn() -> None:
            nursery.start_soon(job.run)

        token.run_sync_soon(context.run, spawn)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            token.run_sync_soon(job.scope.cancel)
            # Wait until the trio code has unwound (its servers told), then
            # report the cancellation.
            await asyncio.wait([done])
            if done.done() and not done.cancelled():
                done.exception()  # retrieved: the cancellation is what we report
            raise

    async def wait_finished(self) -> None:
        """Wait until the trio side has ended (after :meth:`stop`, or because it failed)."""
        if self._finished is not None:
            await asyncio.shield(self._finished)

    async def stop(self) -> None:
        """Cancel running jobs, close the resources and wait for trio to end."""
        finished = self._finished
        if finished is None:
            return
        if self._token is not None and self._stop is not None and not finished.done():
            self._token.run_sync_soon(self._stop.set)
        await finished
