"""Stopping a child process and everything it started, as one process group.

Children that opex_trio starts (stdio MCP servers, the embedded model server)
are spawned with ``start_new_session=True``: each leads a new session, hence a
process group whose id is its pid, so that a shell, ``npx`` or ``uvx`` in
between cannot hide a grandchild from the signals. A terminal's Ctrl-C, sent to
the foreground group, does not reach them either: the program decides when
they stop.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal

import trio

__all__ = ["OutputTail", "group_alive", "signal_group", "terminate_group", "wait_group"]


def group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process remains in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg also finds zombies; on Linux, look closer so an orphan waiting for
    # init to reap it does not count as alive.
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the parenthesised command: state ppid pgrp ...
        rest = stat[stat.rfind(b")") + 2 :].split()
        if len(rest) > 2 and int(rest[2]) == pgid and rest[0] != b"Z":
            return True
    return False


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to process group ``pgid``; a group that is gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def wait_group(process: trio.Process) -> None:
    """Wait until ``process`` and every other member of its group have exited."""
    await process.wait()
    # The leader is gone; give the rest of its group time to follow.
    # No process can be awaited for the others of the group, so poll them.
    while group_alive(process.pid):  # noqa: ASYNC110
        await trio.sleep(0.05)


async def terminate_group(
    process: trio.Process, *, term_grace: float, label: str, logger: logging.Logger
) -> None:
    """SIGTERM the group of ``process``, SIGKILL it after ``term_grace`` seconds, reap the leader.

    Run it shielded: it is cleanup, and it is bounded by the grace. ``label``
    names the process in the warning logged when SIGKILL is needed.
    """
    pgid = process.pid
    if group_alive(pgid):
        signal_group(pgid, signal.SIGTERM)
        with trio.move_on_after(term_grace):
            await wait_group(process)
    if group_alive(pgid):
        logger.warning("%s (pid %d) ignored SIGTERM; killing its process group", label, pgid)
        signal_group(pgid, signal.SIGKILL)
    await process.wait()


class OutputTail:
    """A child's output stream, read line by line until it closes.

    Each line goes to ``logger`` at DEBUG level with ``label``, and the last
    ``keep`` lines are kept for error messages. Reading never stops while the
    child runs, so a child that floods its output never blocks on a full pipe.
    """

    def __init__(
        self, label: str, keep: int, logger: logging.Logger, line_limit: int = 2000
    ) -> None:
        self.label = label
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self.done = trio.Event()
        self._logger = logger
        self._line_limit = line_limit

    async def drain(self, stream: trio.abc.ReceiveStream) -> None:
        """Read ``stream`` to its end (or until it is closed); then :attr:`done` is set."""
        pending = b""
        try:
            while chunk := await stream.receive_some(65536):
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    self._add(raw)
                if len(pending) > self._line_limit:
                    self._add(pending)
                    pending = b""
        except (trio.ClosedResourceError, trio.BrokenResourceError, OSError):
            pass
        finally:
            if pending:
                self._add(pending)
            self.done.set()

    def _add(self, raw: bytes) -> None:
        line = raw[: self._line_limit].decode("utf-8", "replace").rstrip()
        if line:
            self.lines.append(line)
            self._logger.debug("[%s] %s", self.label, line)
