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

__all__ = [
    "GroupWatch",
    "OutputTail",
    "group_alive",
    "signal_group",
    "terminate_group",
    "wait_group",
]


def _anything_in(pgid: int) -> bool:
    """Whether the group has any process at all, zombies included: one cheap syscall."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stat_fields(pid: int | str) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # Fields after the parenthesised command: state ppid pgrp ...
    return stat[stat.rfind(b")") + 2 :].split()


def _is_live_member(pid: int, pgid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z"


def _scan(pgid: int) -> set[int] | None:
    """The live (non-zombie) members of group ``pgid``; ``None`` when /proc cannot be read."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    return {int(e) for e in entries if e.isdigit() and _is_live_member(int(e), pgid)}


def group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process remains in process group ``pgid``.

    This scans /proc, which takes milliseconds on a busy host: call it from a
    thread or a test, never on the event loop (use :class:`GroupWatch` there).
    """
    if not _anything_in(pgid):
        return False
    # killpg also finds zombies; look closer so an orphan waiting for init to
    # reap it does not count as alive.
    members = _scan(pgid)
    return True if members is None else bool(members)


class GroupWatch:
    """Tells whether a process group still has a live member, at almost no cost to the loop.

    A signal 0 to the group answers most checks: nothing at all is left. When
    something is, the members seen before are looked up one file each; only
    when none of them lives (a zombie may be all that remains, or a member
    started another) is /proc scanned again, and then in a worker thread, so
    the event loop never waits for a scan.
    """

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self._members: set[int] = set()

    async def alive(self) -> bool:
        """Whether any live (non-zombie) process remains in the group."""
        pgid = self.pgid
        if not _anything_in(pgid):
            await trio.lowlevel.checkpoint()
            return False
        for pid in list(self._members):
            if _is_live_member(pid, pgid):
                await trio.lowlevel.checkpoint()
                return True
            self._members.discard(pid)
        members = await trio.to_thread.run_sync(_scan, pgid, abandon_on_cancel=True)
        if members is None:
            return True
        self._members = members
        return bool(members)


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to process group ``pgid``; a group that is gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def wait_group(process: trio.Process, watch: GroupWatch | None = None) -> None:
    """Wait until ``process`` and every other member of its group have exited."""
    await process.wait()
    watch = watch or GroupWatch(process.pid)
    # The leader is gone; give the rest of its group time to follow.
    # No process can be awaited for the others of the group, so poll them.
    while await watch.alive():  # noqa: ASYNC110
        await trio.sleep(0.05)


async def terminate_group(
    process: trio.Process, *, term_grace: float, label: str, logger: logging.Logger
) -> None:
    """SIGTERM the group of ``process``, SIGKILL it after ``term_grace`` seconds, reap the leader.

    Run it shielded: it is cleanup, and it is bounded by the grace. ``label``
    names the process in the warning logged when SIGKILL is needed.
    """
    pgid = process.pid
    watch = GroupWatch(pgid)
    if await watch.alive():
        signal_group(pgid, signal.SIGTERM)
        with trio.move_on_after(term_grace):
            await wait_group(process, watch)
    if await watch.alive():
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
