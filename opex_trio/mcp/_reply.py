"""The one-shot reply slot a caller of the MCP actor waits on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import trio

__all__ = ["Reply"]


class Reply:
    """A one-shot slot one caller waits on for its response.

    A trio.Event would do, but this sits on every request's path and a
    single waiter needs none of its generality: the waiting task is parked
    and rescheduled directly.
    """

    __slots__ = ("_waiter", "done", "error", "refused", "result")

    def __init__(self) -> None:
        self.done = False
        # Failed because the server refused the request for a session it
        # forgot: it never ran, so it may be sent again in a new session.
        self.refused = False
        self.result: Mapping[str, Any] | None = None
        self.error: BaseException | None = None
        self._waiter: trio.lowlevel.Task | None = None

    def set(self, result: Mapping[str, Any]) -> None:
        if not self.done:
            self.result = result
            # _wake(), written out: every response comes this way.
            self.done = True
            waiter, self._waiter = self._waiter, None
            if waiter is not None:
                trio.lowlevel.reschedule(waiter)

    def fail(self, error: BaseException) -> None:
        if not self.done:
            self.error = error
            self._wake()

    def _wake(self) -> None:
        self.done = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            trio.lowlevel.reschedule(waiter)

    async def wait(self) -> None:
        """Wait until set or failed; a checkpoint either way."""
        if self.done:
            await trio.lowlevel.checkpoint()
            return
        await trio.lowlevel.wait_task_rescheduled(self.park())

    def park(self) -> Callable[[Any], trio.lowlevel.Abort]:
        """Make the current task the waiter of a reply not yet done; return its abort function.

        For the hot path: ``await trio.lowlevel.wait_task_rescheduled(reply.park())``
        is :meth:`wait` without its frame.
        """
        if self._waiter is not None:
            raise RuntimeError("only one task may wait for a reply")
        self._waiter = trio.lowlevel.current_task()
        return self._abort

    def _abort(self, _: Any) -> trio.lowlevel.Abort:
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED
