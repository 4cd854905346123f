"""Signals become cancellations: Ctrl-C cancels a chat turn or the command, SIGTERM the command."""

from __future__ import annotations

import math
import signal
from collections.abc import AsyncIterator

import trio

from ._errors import EXIT_INTERRUPTED, EXIT_TERMINATED

__all__ = ["Interrupts"]

# A second Ctrl-C within this many seconds of the first quits.
_DOUBLE_PRESS = 1.0


class Interrupts:
    """Turns signals into cancellations.

    SIGINT cancels the current chat turn, or the command when no turn runs or
    when it comes again soon; SIGTERM cancels the command.
    """

    def __init__(self) -> None:
        self.command: trio.CancelScope | None = None
        self.turn: trio.CancelScope | None = None
        self.exit_status: int | None = None
        self._last = -math.inf

    async def watch(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            if signum == signal.SIGTERM:
                self._quit(EXIT_TERMINATED)
            else:
                self.interrupt()

    def interrupt(self) -> None:
        now = trio.current_time()
        turn = self.turn
        if turn is not None and not turn.cancel_called and now - self._last >= _DOUBLE_PRESS:
            turn.cancel()
        else:
            self._quit(EXIT_INTERRUPTED)
        self._last = now

    def _quit(self, status: int) -> None:
        if self.exit_status is None:
            self.exit_status = status
        if self.command is not None:
            self.command.cancel()
