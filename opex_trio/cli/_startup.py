"""Start-up feedback: which MCP servers are starting and which are ready.

A first ``npx -y`` download can take a minute, and a blank screen for that
long looks like a hang. On a terminal one line, redrawn in place every second
and at every change, names the servers still starting; it is erased once all
have settled. Elsewhere (a log, a pipe) a quick start says nothing at all;
one that takes longer than :data:`PLAIN_AFTER` seconds gets a line naming the
servers still starting, then a line as each becomes ready.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from ..mcp.manager import ServerStatus
from ._servers import ready
from ._ui import Ui

__all__ = ["PLAIN_AFTER", "StartupView"]

PLAIN_AFTER = 2.0
_TICK = 1.0
_STARTING = ("starting", "restarting")


class StartupView:
    """Shows the servers' start in ``ui``; feed it with :meth:`update`, run :meth:`tick`."""

    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        self._began = trio.current_time()
        self._servers: Sequence[ServerStatus] = ()
        self._announced = False
        self._said_ready: set[str] = set()

    def update(self, servers: Sequence[ServerStatus]) -> None:
        """The servers' states changed."""
        self._servers = servers
        if self.ui.err_tty:
            self._draw()
        elif self._announced:
            self._say_ready()

    async def tick(self) -> None:
        """Keep the view current while servers start (run it in a task; cancel it after)."""
        if self.ui.err_tty:
            while True:
                await trio.sleep(_TICK)
                self._draw()
        await trio.sleep_until(self._began + PLAIN_AFTER)
        waiting = self._waiting()
        if waiting:
            self._said_ready.update(s.id for s in self._servers if ready(s))
            self.ui.notice(f"waiting for MCP servers to start: {', '.join(waiting)}")
            self._announced = True

    def done(self) -> None:
        """Start-up is over: erase the line."""
        self.ui.clear_progress()

    def _waiting(self) -> list[str]:
        return [s.id for s in self._servers if s.state in _STARTING]

    def _draw(self) -> None:
        waiting = self._waiting()
        if not waiting:
            self.ui.clear_progress()
            return
        done = sum(1 for s in self._servers if ready(s))
        elapsed = trio.current_time() - self._began
        self.ui.status(
            f"[servers] {done}/{len(self._servers)} ready, {elapsed:.0f} s; "
            f"starting: {', '.join(waiting)}"
        )

    def _say_ready(self) -> None:
        for status in self._servers:
            if ready(status) and status.id not in self._said_ready:
                self._said_ready.add(status.id)
                count = len(status.tools)
                self.ui.notice(
                    f"MCP server {status.id!r} is ready ({count} tool{'' if count == 1 else 's'})"
                )
