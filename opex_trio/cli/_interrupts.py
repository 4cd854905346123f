"""Signals become cancellations: Ctrl-C cancels a chat turn or the command, SIGTERM the command.

SIGHUP (the terminal closed) is a SIGTERM with its own exit status: the
servers are stopped in order either way, rather than left to notice that
their input has closed. SIGWINCH (the terminal resized) redraws the status line.
"""

from __future__ import annotations

import math
import signal
from collections.abc import AsyncIterator, Callable

import trio

from ._errors import EXIT_HANGUP, EXIT_INTERRUPTED, EXIT_TERMINATED

__all__ = ["SIGNALS", "Interrupts"]

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGWINCH)

# A second Ctrl-C within this many seconds of the first quits.
_DOUBLE_PRESS = 1.0


class Interrupts:
    """Turns signals into cancellations.

    SIGINT cancels the current chat turn, or the command when no turn runs or
    when it comes again soon; SIGTERM and SIGHUP cancel the command; SIGWINCH
    calls ``on_resize``.
    """

    def __init__(self, on_resize: Callable[[], object] | None = None) -> None:
        self.on_resize = on_resize
        self.command: trio.CancelScope | None = None
        self.turn: trio.CancelScope | None = None
        self.exit_status: int | None = None
        self._last = -math.inf

    async def watch(self, signals: AsyncIterator[int]) -> None:
        """Act on each signal of :data:`SIGNALS` as it arrives."""
        async for signum in signals:
            if signum == signal.SIGTERM:
                self._quit(EXIT_TERMINATED)
            elif signum == signal.SIGHUP:
                self._quit(EXIT_HANGUP)
            elif signum == signal.SIGWINCH:
                if self.on_resize is not None:
                    self.on_resize()
            else:
                self.interrupt()

    def interrupt(self) -> None:
        """A Ctrl-C: cancel the turn, or the command when there is none or it comes again soon."""
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
